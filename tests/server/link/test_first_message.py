"""The first-message deadline (link/handshake.py): the whole HELLO within `first_message_timeout`,
else the connection is closed without a word, its slot freed and counted as shed. MockClock."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from protocol.codes import CloseReason
from protocol.connection import PREAMBLE, Connection, Role
from protocol.messages import Hello, Welcome
from server.link.acceptor import AdmissionGate, HandshakeSlot
from server.link.late_hello import arrived_event, read_ready
from server.link.session import DeviceSession
from server.link.shed import ShedReason

from ..harness import Harness, read_all, start_harness

ADDRESS = "192.0.2.7"


def hello_bytes(h: Harness) -> tuple[Connection, bytes]:
    identity = h.known[0]
    conn = Connection(Role.CLIENT, identity.key, server_public_key=h.server_public_key)
    return conn, conn.send(Hello(identity.device_id, None, 1, 6, 1))


async def tcp_pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    """Both ends of a loopback TCP connection (client, server)."""
    with trio.socket.socket() as listener:
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = trio.socket.socket()
        await client.connect(listener.getsockname())
        server, _ = await listener.accept()
        return client, server


def session_with_slot(h: Harness, gate: AdmissionGate) -> tuple[trio.abc.Stream, DeviceSession]:
    """A session as the acceptor starts it: holding a slot and its address's share."""
    client, server = trio.testing.memory_stream_pair()
    gate.slots.acquire_nowait()
    assert gate.shares.take(ADDRESS)
    session = DeviceSession(server, h.ctx, HandshakeSlot(gate, ADDRESS))
    h.nursery.start_soon(session.run)
    return client, session


async def test_a_silent_connection_is_shed_at_the_deadline_and_frees_its_slot(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    h = await start_harness(tmp_path, nursery, first_message_timeout=0.3)
    gate = AdmissionGate.for_config(h.ctx.config)
    start = trio.current_time()
    client, session = session_with_slot(h, gate)
    assert await read_all(client) == b""  # told nothing
    assert trio.current_time() - start == pytest.approx(0.3, abs=0.01)
    assert session.close_reason is CloseReason.HANDSHAKE_TIMEOUT and session.unanswered
    assert "no complete hello within 0.3 s" in session.close_detail
    await trio.testing.wait_all_tasks_blocked()
    assert gate.slots.value == h.ctx.config.max_handshakes  # the slot went back
    assert gate.shares.held(ADDRESS) == 0
    assert gate.shed.totals == {ShedReason.FIRST_MESSAGE_TIMEOUT: 1}


async def test_one_byte_a_second_is_shed_at_the_deadline(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    h = await start_harness(tmp_path, nursery)
    gate = AdmissionGate.for_config(h.ctx.config)
    client, session = session_with_slot(h, gate)
    start = trio.current_time()
    _, hello = hello_bytes(h)
    with pytest.raises(trio.BrokenResourceError):  # the server's end is closed under it
        for byte in hello:  # a valid HELLO, but far too slowly
            await client.send_all(bytes([byte]))
            await trio.sleep(0.4)
    await trio.testing.wait_all_tasks_blocked()  # the session has finished closing
    assert session.close_reason is CloseReason.HANDSHAKE_TIMEOUT and session.unanswered
    assert session.hello is None
    assert trio.current_time() - start < h.ctx.config.first_message_timeout + 1
    assert gate.shed.totals[ShedReason.FIRST_MESSAGE_TIMEOUT] == 1


async def test_a_hello_that_trickles_in_before_the_deadline_is_answered(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    h = await start_harness(tmp_path, nursery)
    gate = AdmissionGate.for_config(h.ctx.config)
    client, session = session_with_slot(h, gate)
    conn, hello = hello_bytes(h)
    assert hello.startswith(PREAMBLE)
    step = 0.9 * h.ctx.config.first_message_timeout / len(hello)
    for byte in hello:  # a slow link: the whole HELLO just inside the deadline
        await client.send_all(bytes([byte]))
        await trio.sleep(step)
    conn.receive_data(await client.receive_some(65536))
    assert isinstance(conn.next_event(), Welcome)
    assert not session.unanswered and session.hello is not None
    assert gate.shed.totals.total() == 0


async def test_after_the_hello_the_handshake_deadline_still_rules(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """HELLO in time, READY never: the 10 s handshake deadline, GOODBYE said, nothing shed."""
    h = await start_harness(tmp_path, nursery)
    gate = AdmissionGate.for_config(h.ctx.config)
    client, session = session_with_slot(h, gate)
    start = trio.current_time()
    _, hello = hello_bytes(h)
    await client.send_all(hello)
    assert await read_all(client) != b""  # WELCOME, then a GOODBYE
    assert trio.current_time() - start == pytest.approx(h.ctx.config.handshake_timeout, abs=0.5)
    assert session.close_reason is CloseReason.HANDSHAKE_TIMEOUT and not session.unanswered
    assert gate.shed.totals.total() == 0
    assert gate.slots.value == h.ctx.config.max_handshakes


async def test_after_the_deadline_a_hello_already_in_the_kernel_still_counts(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """The deadline judges the device: in a storm the server may reach a session's socket after the
    deadline though the HELLO arrived in time (a 5k storm on the bench: 1,013 of 5,000 devices shed
    before late_hello.py, none after). What has arrived is read without waiting: a complete HELLO
    counts, part of one does not."""
    h = await start_harness(tmp_path, nursery)
    _, hello = hello_bytes(h)
    for sent, complete in ((hello, True), (hello[:-1], False), (b"", False)):
        ours, theirs = await tcp_pair()
        with ours, theirs:
            await ours.send(sent)
            await trio.sleep(0.01)  # on its way through loopback
            server = Connection(Role.SERVER, h.ctx.server_key)
            event = arrived_event(server, trio.SocketStream(theirs), 65536)
            assert isinstance(event, Hello) is complete
            assert event is None or complete


async def test_what_arrived_is_read_without_waiting() -> None:
    ours, theirs = trio.socket.socketpair()
    with ours, theirs:
        stream = trio.SocketStream(theirs)
        assert read_ready(stream, 64) is None  # nothing yet: no wait
        await ours.send(b"abc")
        assert read_ready(stream, 64) == b"abc"
        ours.close()
        assert read_ready(stream, 64) == b""  # the end of the stream
    assert read_ready(trio.testing.memory_stream_pair()[0], 64) is None  # not a socket: cannot know
