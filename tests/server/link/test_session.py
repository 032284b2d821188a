"""Device sessions over memory streams: real DeviceSession, real SimDevice or raw bytes, MockClock."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from firmware_sim.device import DeviceClosed, DeviceRefused, DeviceSettings, SimDevice, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import AckResult, CloseReason, Privilege, Status
from protocol.connection import PREAMBLE, Connection, Role
from protocol.framing import encode_frame
from protocol.messages import Goodbye, Hello, Ping, Publish, Ready, Welcome, encode_message
from protocol.noise import KeyPair
from server.link.session import DeviceSession
from server.link.transport import GOODBYE_TIMEOUT, IDLE_SLACK

from ..harness import Harness, read_all, start_harness


@pytest.fixture
async def harness(tmp_path: Path, nursery: trio.Nursery) -> Harness:
    """Tests also take `autojump_clock`: pytest-trio uses a clock only from the test's own arguments."""
    return await start_harness(tmp_path, nursery)


async def settle() -> None:
    """Let sessions finish closing: a refused or closed session lingers (up to GOODBYE_TIMEOUT)
    for the peer's EOF before it logs. Instant on the autojump clock."""
    await trio.sleep(GOODBYE_TIMEOUT + 0.5)


def session_logs(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if r.getMessage() == event]  # type: ignore[attr-defined]


def hello_for(identity: DeviceIdentity, counter: int = 1, product_id: int | None = None) -> Hello:
    return Hello(identity.device_id, product_id, 1, 6, counter)


async def raw_handshake(h: Harness, identity: DeviceIdentity, counter: int = 1) -> tuple[trio.abc.Stream, Connection]:
    """Handshake by hand (no Ready yet) so tests can send what SimDevice never would."""
    stream = h.open_stream()
    conn = Connection(Role.CLIENT, identity.key, server_public_key=h.server_public_key, rx_max_frame=65535)
    await stream.send_all(conn.send(Hello(identity.device_id, None, 1, 6, counter, 65535)))
    conn.receive_data(await stream.receive_some(65536))
    assert isinstance(conn.next_event(), Welcome)
    return stream, conn


def goodbye_in(conn: Connection, data: bytes) -> Goodbye:
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, Goodbye), event
    return event


# ---------------------------------------------------------------------- accepted


async def test_development_device_publishes_and_events_are_stored(
    harness: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    identity = harness.known[0]
    async with connect_device(harness.open_stream(), identity, harness.server_public_key) as dev:
        assert dev.state.status is Status.DEVELOPMENT
        assert dev.state.privileges == Privilege.NONE
        for i in range(4):  # Particle's burst
            assert await dev.publish("temp", str(i).encode()) is AckResult.ACCEPTED
        # Over the rate: told to slow down, not stored, and the link stays up.
        assert await dev.publish("temp", b"4") is AckResult.SLOW_DOWN
        await trio.sleep(1.0)  # one token a second (MockClock: no real wait)
        assert await dev.publish("temp", b"4") is AckResult.ACCEPTED
        assert await dev.publish("temp", b"5") is AckResult.SLOW_DOWN
    # Reconnecting does not refill the bucket.
    async with connect_device(harness.open_stream(), identity, harness.server_public_key) as dev:
        assert await dev.publish("temp", b"5") is AckResult.SLOW_DOWN
        record = harness.store.get_device(identity.device_id_hex)
        assert record is not None and record.online and record.last_counter == dev.counter
    events = harness.store.list_events(identity.device_id_hex)
    assert [e.data for e in events] == [b"0", b"1", b"2", b"3", b"4"]
    # No product privilege: nothing is routed to a product stream.
    assert all(e.product_id is None for e in events)


async def test_unknown_product_is_limited(harness: Harness, autojump_clock: trio.testing.MockClock) -> None:
    settings = DeviceSettings(product_id=4242)
    async with connect_device(harness.open_stream(), harness.known[0], harness.server_public_key, settings) as dev:
        assert dev.state.status is Status.LIMITED
        assert dev.state.privileges == Privilege.NONE


async def test_device_goodbye_marks_offline(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    identity = harness.known[0]
    async with connect_device(harness.open_stream(), identity, harness.server_public_key):
        pass
    await settle()
    record = harness.store.get_device(identity.device_id_hex)
    assert record is not None and not record.online and record.last_heard is not None
    (closed,) = session_logs(caplog, "device_closed")
    assert closed["reason"] == "normal" and closed["device_id"] == identity.device_id_hex


async def test_abrupt_disconnect_is_connection_lost(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream, conn = await raw_handshake(harness, harness.known[0])
    await stream.send_all(conn.send(Ready()))
    await settle()
    await stream.aclose()
    await settle()
    (closed,) = session_logs(caplog, "device_closed")
    assert closed["reason"] == "connection_lost"
    record = harness.store.get_device(harness.known[0].device_id_hex)
    assert record is not None and not record.online


# ---------------------------------------------------------------------- refused


async def assert_refused(
    harness: Harness, caplog: pytest.LogCaptureFixture, stream: trio.abc.Stream, detail: str
) -> None:
    assert await read_all(stream) == b"\x00\x00"  # the uniform refusal: nothing else
    await settle()
    (refused,) = session_logs(caplog, "device_refused")
    assert detail in refused["detail"], refused


async def test_unknown_device_is_refused(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(DeviceRefused):
        await SimDevice(DeviceIdentity.generate(), harness.server_public_key).handshake(harness.open_stream())
    await settle()
    (refused,) = session_logs(caplog, "device_refused")
    assert refused["detail"] == "unknown device ID" and refused["reason"] == "auth_failed"


async def test_wrong_device_key_is_refused(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    impostor = DeviceIdentity(harness.known[0].device_id, KeyPair.generate())
    with pytest.raises(DeviceRefused):
        await SimDevice(impostor, harness.server_public_key).handshake(harness.open_stream())
    await settle()
    (refused,) = session_logs(caplog, "device_refused")
    assert "does not match the registered key" in refused["detail"]
    record = harness.store.get_device(impostor.device_id_hex)
    assert record is not None and record.last_counter == 0 and not record.online  # nothing written


async def test_wrong_server_key_is_refused(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(DeviceRefused):
        await SimDevice(harness.known[0], KeyPair.generate().public).handshake(harness.open_stream())
    await settle()
    (refused,) = session_logs(caplog, "device_refused")
    assert "handshake message 1 rejected" in refused["detail"]


async def test_replayed_hello_is_refused(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    identity = harness.known[0]
    conn = Connection(Role.CLIENT, identity.key, server_public_key=harness.server_public_key, rx_max_frame=65535)
    message_1 = conn.send(hello_for(identity, counter=77) and Hello(identity.device_id, None, 1, 6, 77, 65535))
    stream = harness.open_stream()
    await stream.send_all(message_1)
    conn.receive_data(await stream.receive_some(65536))
    assert isinstance(conn.next_event(), Welcome)
    await stream.send_all(conn.send(Ready()))
    await settle()
    await stream.send_all(conn.send(Goodbye(CloseReason.NORMAL)))
    await settle()

    replay = harness.open_stream()
    await replay.send_all(message_1)  # the exact captured bytes
    await assert_refused(harness, caplog, replay, "replayed hello: counter 77")


async def test_older_counter_is_refused(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    identity = harness.known[0]
    async with connect_device(harness.open_stream(), identity, harness.server_public_key, counter=1000):
        pass
    with pytest.raises(DeviceRefused):
        await SimDevice(identity, harness.server_public_key, counter=999).handshake(harness.open_stream())


async def test_unconfirmed_hello_writes_nothing(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A hello that never reaches READY (a replay or a stall) must leave no trace but the log."""
    identity = harness.known[0]
    start = trio.current_time()
    stream, conn = await raw_handshake(harness, identity, counter=5)
    goodbye = goodbye_in(conn, await read_all(stream))
    assert goodbye.reason is CloseReason.HANDSHAKE_TIMEOUT
    assert trio.current_time() - start == pytest.approx(harness.ctx.config.handshake_timeout, abs=0.5)
    record = harness.store.get_device(identity.device_id_hex)
    assert record is not None and record.last_counter == 0 and not record.online and record.last_heard is None
    # The same counter is therefore still usable by the genuine device.
    async with connect_device(harness.open_stream(), identity, harness.server_public_key, counter=5) as dev:
        assert dev.state.status is Status.DEVELOPMENT


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "protocol_error"),
        (b"FG\x00\x02" + b"\x00" * 200, "unsupported_version"),
        (PREAMBLE + b"\xff\xff", "frame_too_large"),
        (PREAMBLE + b"\x00\x00", "protocol_error"),
        (PREAMBLE + encode_frame(b"\x01" * 200), "auth_failed"),
    ],
    ids=["http-request", "version-2", "oversize-length", "empty-frame", "garbage-handshake"],
)
async def test_bad_opening_bytes_are_refused(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, data: bytes, reason: str
) -> None:
    stream = harness.open_stream()
    await stream.send_all(data)
    assert await read_all(stream) == b"\x00\x00"
    await settle()
    logs = session_logs(caplog, "device_refused") + session_logs(caplog, "device_closed")
    assert [entry["reason"] for entry in logs] == [reason]


async def test_truncated_handshake_then_eof(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = harness.open_stream()
    await stream.send_all(PREAMBLE + b"\x00\x80" + b"\x01" * 10)
    await stream.send_eof()  # type: ignore[attr-defined]
    assert await read_all(stream) == b"\x00\x00"
    await settle()
    (closed,) = session_logs(caplog, "device_closed")
    assert closed["reason"] == "protocol_error" and "middle of a frame" in closed["detail"]


async def test_stalled_handshake_times_out(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Stalled inside its HELLO: closed at the first-message deadline, unanswered (issue 14: was the
    10 s handshake deadline and a refusal frame; tests/server/test_first_message.py has the rest)."""
    stream = harness.open_stream()
    start = trio.current_time()
    await stream.send_all(PREAMBLE + b"\x00\x60")  # a frame header, then silence
    assert await read_all(stream) == b""
    assert trio.current_time() - start == pytest.approx(harness.ctx.config.first_message_timeout, abs=0.1)
    await settle()
    assert session_logs(caplog, "device_closed") == []  # counted per burst by the acceptor, not logged each
    (session,) = harness.sessions
    assert session.close_reason is CloseReason.HANDSHAKE_TIMEOUT and session.unanswered


# ---------------------------------------------------------------------- misbehaviour after auth


def forge(conn: Connection, payload: bytes) -> bytes:
    """Encrypt arbitrary plaintext as the device would, bypassing the Connection's own checks."""
    return encode_frame(conn._send_cipher.encrypt_with_ad(b"", payload))  # type: ignore[union-attr]


async def test_message_before_ready_is_refused(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream, conn = await raw_handshake(harness, harness.known[0])
    await stream.send_all(forge(conn, encode_message(Publish(1, "early"))))
    assert goodbye_in(conn, await read_all(stream)).reason is CloseReason.UNEXPECTED_MESSAGE
    assert harness.store.list_events() == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xc1", CloseReason.MESSAGE_INVALID),  # reserved msgpack byte
        (b"\x92\x10\x01", CloseReason.MESSAGE_INVALID),  # publish with a missing name
        (b"\x91\x7f", CloseReason.MESSAGE_INVALID),  # unknown message type
        (encode_message(Welcome(Status.OK, Privilege.NONE, None, 1, 1, 512, 0)), CloseReason.UNEXPECTED_MESSAGE),
        (encode_message(Ready()), CloseReason.UNEXPECTED_MESSAGE),  # a second READY
    ],
    ids=["not-msgpack", "short-publish", "unknown-type", "server-message", "second-ready"],
)
async def test_bad_message_after_auth_closes_with_reason(
    harness: Harness,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    payload: bytes,
    reason: CloseReason,
) -> None:
    stream, conn = await raw_handshake(harness, harness.known[0])
    await stream.send_all(conn.send(Ready()) + forge(conn, payload))
    assert goodbye_in(conn, await read_all(stream)).reason is reason
    await settle()
    (closed,) = session_logs(caplog, "device_closed")
    assert closed["reason"] == reason.name.lower()


async def test_oversize_frame_after_auth(harness: Harness, autojump_clock: trio.testing.MockClock) -> None:
    stream, conn = await raw_handshake(harness, harness.known[0])
    limit = harness.ctx.config.rx_max_frame
    await stream.send_all(conn.send(Ready()) + (limit + 1).to_bytes(2, "big"))
    assert goodbye_in(conn, await read_all(stream)).reason is CloseReason.FRAME_TOO_LARGE


async def test_tampered_frame_after_auth(harness: Harness, autojump_clock: trio.testing.MockClock) -> None:
    stream, conn = await raw_handshake(harness, harness.known[0])
    frame = bytearray(conn.send(Ready()))
    frame[-1] ^= 1
    await stream.send_all(bytes(frame))
    assert goodbye_in(conn, await read_all(stream)).reason is CloseReason.DECRYPT_FAILED


# ---------------------------------------------------------------------- timers and backpressure


async def test_idle_device_is_closed(harness: Harness, autojump_clock: trio.testing.MockClock) -> None:
    settings = DeviceSettings(heartbeat=False)
    async with connect_device(harness.open_stream(), harness.known[0], harness.server_public_key, settings) as dev:
        start = trio.current_time()
        await dev.closed_event.wait()
        assert dev.closed is not None and dev.closed.reason is CloseReason.IDLE_TIMEOUT
        assert trio.current_time() - start == pytest.approx(harness.ctx.config.idle_timeout, abs=0.5)


async def test_idle_timeout_counts_from_the_last_frame(
    harness: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    """The timer moves at most once per IDLE_SLACK: a device is never cut sooner than idle_timeout
    after its last frame, and at most IDLE_SLACK later."""
    timeout = harness.ctx.config.idle_timeout
    settings = DeviceSettings(heartbeat=False)
    async with connect_device(harness.open_stream(), harness.known[0], harness.server_public_key, settings) as dev:
        for gap in (0.3, 0.3, timeout / 2, 0.1):  # some frames inside one slack, some beyond
            await trio.sleep(gap)
            await dev.ping()
        last = trio.current_time()
        await dev.closed_event.wait()
        assert dev.closed is not None and dev.closed.reason is CloseReason.IDLE_TIMEOUT
        assert timeout <= trio.current_time() - last <= timeout + IDLE_SLACK + 0.01


async def test_heartbeats_keep_a_device_connected(harness: Harness, autojump_clock: trio.testing.MockClock) -> None:
    async with connect_device(harness.open_stream(), harness.known[0], harness.server_public_key) as dev:
        await trio.sleep(10 * harness.ctx.config.idle_timeout)
        assert dev.closed is None
        assert await dev.publish("still-here") is AckResult.ACCEPTED


async def test_an_idle_connection_holds_no_writer_task(
    harness: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    """The writer runs while there is something to write and then ends: idle connections are one
    task each (their memory is the `hold` benchmark's figure), and a later message starts it again."""
    identity = harness.known[0]
    settings = DeviceSettings(heartbeat=False)
    async with connect_device(harness.open_stream(), identity, harness.server_public_key, settings) as dev:
        await trio.testing.wait_all_tasks_blocked()  # the server has READY and is serving
        session = harness.ctx.registry.get(identity.device_id_hex)
        assert isinstance(session, DeviceSession)
        nursery = session.transport.nursery
        assert nursery is not None
        for _ in range(3):
            await dev.ping()  # its PONG came from a writer...
            await trio.testing.wait_all_tasks_blocked()
            assert not session.transport.writing and not nursery.child_tasks  # ...that has ended
        assert await dev.publish("after-idle") is AckResult.ACCEPTED


async def lockstep_handshake(harness: Harness, stream: trio.abc.Stream) -> Connection:
    """Handshake (no Ready yet) on a lockstep stream, where every write waits for the reader."""
    identity = harness.known[0]
    conn = Connection(Role.CLIENT, identity.key, server_public_key=harness.server_public_key, rx_max_frame=65535)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, conn.send(Hello(identity.device_id, None, 1, 6, 9, 65535)))
        conn.receive_data(await stream.receive_some(65536))
        assert isinstance(conn.next_event(), Welcome)
    return conn


async def test_device_that_never_reads_is_closed_as_slow_consumer(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # lockstep: the server's writes block until the device reads, and this device never does.
    stream = harness.open_stream(lockstep=True)
    conn = await lockstep_handshake(harness, stream)
    pings = conn.send(Ready()) + b"".join(conn.send(Ping(i)) for i in range(harness.ctx.config.send_queue + 50))
    with trio.move_on_after(60), contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(pings)
    await trio.sleep(5)  # past the session's goodbye attempt, which this device never reads either
    (closed,) = session_logs(caplog, "device_closed")
    assert closed["reason"] == "slow_consumer" and "queue" in closed["detail"]


async def test_write_timeout_is_slow_consumer(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream = harness.open_stream(lockstep=True)
    conn = await lockstep_handshake(harness, stream)
    start = trio.current_time()
    await stream.send_all(conn.send(Ready()) + conn.send(Ping(1)))  # one pong the device never reads
    await trio.sleep(harness.ctx.config.write_timeout + 1)
    (closed,) = session_logs(caplog, "device_closed")
    assert closed["reason"] == "slow_consumer" and "write took over" in closed["detail"]
    assert trio.current_time() - start >= harness.ctx.config.write_timeout


# ---------------------------------------------------------------------- replacement and shutdown


async def test_second_connection_replaces_the_first(harness: Harness, autojump_clock: trio.testing.MockClock) -> None:
    identity = harness.known[0]
    key = harness.server_public_key
    async with (
        connect_device(harness.open_stream(), identity, key) as first,
        connect_device(harness.open_stream(), identity, key) as second,
    ):
        await first.closed_event.wait()
        assert first.closed is not None and first.closed.reason is CloseReason.REPLACED
        await settle()
        assert await second.publish("after-replace") is AckResult.ACCEPTED
        record = harness.store.get_device(identity.device_id_hex)
        assert record is not None and record.online  # the old session's exit did not mark it offline
        assert len(harness.ctx.registry) == 1


async def test_shutdown_says_goodbye(harness: Harness, autojump_clock: trio.testing.MockClock) -> None:
    async with connect_device(harness.open_stream(), harness.known[0], harness.server_public_key) as dev:
        await settle()
        harness.ctx.registry.close_all(CloseReason.SERVER_SHUTDOWN, "bye")
        await dev.closed_event.wait()
        assert dev.closed is not None and dev.closed.reason is CloseReason.SERVER_SHUTDOWN
    await harness.ctx.registry.wait_empty()


async def test_publish_after_close_raises(harness: Harness, autojump_clock: trio.testing.MockClock) -> None:
    async with connect_device(harness.open_stream(), harness.known[0], harness.server_public_key) as dev:
        await settle()
        harness.ctx.registry.close_all(CloseReason.SERVER_SHUTDOWN)
        await dev.closed_event.wait()
        with pytest.raises(DeviceClosed):
            await dev.publish("late")


async def test_log_level_of_refusal_is_warning(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(DeviceRefused):
        await SimDevice(DeviceIdentity.generate(), harness.server_public_key).handshake(harness.open_stream())
    await settle()
    (record,) = [r for r in caplog.records if r.getMessage() == "device_refused"]
    assert record.levelno == logging.WARNING


async def test_goodbye_before_ready_writes_nothing(
    harness: Harness, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    stream, conn = await raw_handshake(harness, harness.known[0], counter=3)
    await stream.send_all(conn.send(Goodbye(CloseReason.CLIENT_ERROR, "changed my mind")))
    assert await read_all(stream) == b""  # the device said goodbye: nothing more to say to it
    await settle()
    (closed,) = session_logs(caplog, "device_closed")
    assert closed["reason"] == "normal" and "before READY" in closed["detail"]
    record = harness.store.get_device(harness.known[0].device_id_hex)
    assert record is not None and record.last_counter == 0 and not record.online
