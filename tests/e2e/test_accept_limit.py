"""At most `max_handshakes` handshakes run at once; other connections wait in the listen queue
without a handshake clock, and each slot is freed when its handshake ends (server/link/acceptor.py).
A connection that sends no HELLO holds its slot only until the first-message deadline."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio
import trio.testing

from firmware_sim.device import DeviceRefused, DeviceSettings, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import AckResult
from protocol.connection import Connection, Role
from protocol.messages import Hello
from server.link.acceptor import AdmissionGate, HandshakeSlot
from server.link.peer_closed import peer_has_closed

from .conftest import start_live


async def test_a_silent_connection_holds_its_slot_until_its_first_message_deadline(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_live(tmp_path, nursery, devices=2, max_handshakes=1, first_message_timeout=1.0)
    silent = socket.create_connection(("127.0.0.1", live.port))  # takes the only slot, says nothing
    try:
        await trio.sleep(0.2)
        start = trio.current_time()
        stream = await trio.open_tcp_stream("127.0.0.1", live.port)
        # Waits in the listen queue until the silent one is shed (1 s, not the 10 s handshake
        # deadline: issue 14), then is served
        # in full: its own clock started only when it was accepted.
        async with stream, connect_device(stream, live.known[0], live.key, DeviceSettings()) as dev:
            assert trio.current_time() - start >= 0.7
            assert await dev.publish("through") is AckResult.ACCEPTED
            # The slot went back when this handshake ended: a second device does not wait.
            start = trio.current_time()
            other = await trio.open_tcp_stream("127.0.0.1", live.port)
            async with other, connect_device(other, live.known[1], live.key, DeviceSettings()) as dev2:
                assert trio.current_time() - start < 0.7
                assert dev2.closed is None
        assert told(silent) == b""  # shed without a word (before issue 14: the refusal frame at 10 s)
    finally:
        silent.close()
    live.server.shutdown()


async def test_a_refused_handshake_frees_its_slot(tmp_path: Path, nursery: trio.Nursery) -> None:
    live = await start_live(tmp_path, nursery, devices=1, max_handshakes=1)
    refused = DeviceIdentity.generate()  # never registered
    with trio.fail_after(5):
        async with await trio.open_tcp_stream("127.0.0.1", live.port) as stranger:
            with pytest.raises(DeviceRefused):
                async with connect_device(stranger, refused, live.key, DeviceSettings()):
                    pass
        stream = await trio.open_tcp_stream("127.0.0.1", live.port)
        async with stream, connect_device(stream, live.known[0], live.key, DeviceSettings()) as dev:
            assert dev.closed is None
    live.server.shutdown()


async def test_a_device_that_gave_up_in_the_listen_queue_is_not_answered(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    live = await start_live(tmp_path, nursery, devices=2, max_handshakes=1, handshake_timeout=1.0)
    silent = socket.create_connection(("127.0.0.1", live.port))  # holds the only slot for 1 s
    try:
        await trio.sleep(0.2)
        quitter = await trio.open_tcp_stream("127.0.0.1", live.port)  # waits in the listen queue
        async with quitter:
            device = live.known[0]
            hello = Hello(device.device_id, product_id=None, firmware_version=1, platform_id=6, counter=1)
            await quitter.send_all(Connection(Role.CLIENT, device.key, server_public_key=live.key).send(hello))
            await quitter.send_eof()  # gives up: its end is closed, its hello already sent
            with trio.fail_after(5):
                assert await quitter.receive_some(4096) == b""  # no WELCOME: nothing was answered
        stream = await trio.open_tcp_stream("127.0.0.1", live.port)
        async with stream, connect_device(stream, live.known[1], live.key, DeviceSettings()) as dev:
            assert dev.closed is None  # the slot went back
    finally:
        silent.close()
    closed = [r.fields for r in caplog.records if r.getMessage() == "device_closed"]  # type: ignore[attr-defined]
    assert any(f["reason"] == "connection_lost" and "not answered" in f["detail"] for f in closed), closed
    live.server.shutdown()


async def test_peer_has_closed_sees_the_fin_without_reading() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    async with listener:
        port = listener.socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        async with client, await listener.accept() as server:
            await client.send_all(b"hello")
            await trio.sleep(0.05)
            assert not peer_has_closed(server)  # data, and the peer still open
            await client.send_eof()
            await trio.sleep(0.05)
            assert peer_has_closed(server)
            assert await server.receive_some(16) == b"hello"  # nothing was read by asking
    left, _ = trio.testing.memory_stream_pair()
    assert not peer_has_closed(left)  # not a socket: cannot be known, so no


def told(sock: socket.socket) -> bytes:
    """What the server said before closing: a reset reads as nothing said."""
    try:
        return sock.recv(16)
    except ConnectionResetError:
        return b""


def test_a_slot_is_released_once() -> None:
    gate = AdmissionGate(max_handshakes=1, per_address=1)
    gate.slots.acquire_nowait()
    assert gate.shares.take("192.0.2.1")
    slot = HandshakeSlot(gate, "192.0.2.1")
    slot.release()
    slot.release()  # the session and handle_device's finally may both call it
    slot.shed_unanswered()  # and after a release, shedding it counts nothing
    assert gate.slots.value == 1 and gate.shares.held("192.0.2.1") == 0
    assert gate.shed.totals.total() == 0
