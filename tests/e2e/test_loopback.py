"""End to end over loopback TCP: SimDevices against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from firmware_sim.device import DeviceRefused, DeviceSettings, SimDevice, connect_device
from firmware_sim.fleet import FleetPlan, run_fleet, summarize
from firmware_sim.identity import DeviceIdentity
from protocol.codes import AckResult, CloseReason, Status
from protocol.connection import PREAMBLE
from protocol.framing import encode_frame

from .conftest import Live, another_store, start_live


async def test_two_hundred_devices_authenticate_and_every_event_is_acked(live: Live) -> None:
    plan = FleetPlan("127.0.0.1", live.port, live.key, DeviceSettings(product_id=None), publish=5)
    start = trio.current_time()
    outcomes = await run_fleet(plan, live.known)
    summary = summarize(outcomes, trio.current_time() - start)
    assert summary["connected"] == 200 and summary["errors"] == 0, [o for o in outcomes if o.error][:3]
    assert summary["events_acked"] == summary["events_sent"] == 1000
    assert len(live.store.list_events(limit=5000)) == 1000
    assert summary["statuses"] == {"development": 200}


async def test_strangers_are_refused_while_known_devices_connect(live: Live) -> None:
    strangers = [DeviceIdentity.generate() for _ in range(10)]
    impostors = [DeviceIdentity(i.device_id, DeviceIdentity.generate().key) for i in live.known[:10]]
    plan = FleetPlan("127.0.0.1", live.port, live.key, publish=1)
    outcomes = await run_fleet(plan, strangers + impostors + live.known[10:30])
    by_outcome = {o.device_id + str(n): o.outcome for n, o in enumerate(outcomes)}
    assert list(by_outcome.values()) == ["refused"] * 20 + ["connected"] * 20
    assert live.store.list_events(limit=100) and all(
        e.device_id in {i.device_id_hex for i in live.known[10:30]} for e in live.store.list_events(limit=100)
    )


async def raw_exchange(port: int, data: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        out = bytearray()
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                out += chunk
        return bytes(out)


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00" + b"\x00" * 64,  # a TLS ClientHello
        PREAMBLE + b"\xff\xff" + b"A" * 1000,  # oversize length prefix
        PREAMBLE + encode_frame(bytes(range(256)) * 1),  # garbage handshake
        b"FG\x00\x09",  # a future protocol version
    ],
    ids=["tls", "oversize", "garbage", "version"],
)
async def test_bad_bytes_are_refused_and_the_server_keeps_serving(live: Live, data: bytes) -> None:
    assert await raw_exchange(live.port, data) == b"\x00\x00"
    async with connect_device(await trio.open_tcp_stream("127.0.0.1", live.port), live.known[0], live.key) as dev:
        assert await dev.publish("still-serving") is AckResult.ACCEPTED


async def test_stalled_handshakes_time_out_without_hurting_others(tmp_path: Path, nursery: trio.Nursery) -> None:
    live = await start_live(tmp_path, nursery, devices=2, handshake_timeout=0.5)
    stalled = [await trio.open_tcp_stream("127.0.0.1", live.port) for _ in range(20)]
    for s in stalled:
        await s.send_all(PREAMBLE)
    async with connect_device(await trio.open_tcp_stream("127.0.0.1", live.port), live.known[0], live.key) as dev:
        assert dev.state.status is Status.DEVELOPMENT
    with trio.fail_after(5):
        for s in stalled:
            assert await s.receive_some(16) == b"\x00\x00"
            await s.aclose()
    live.server.shutdown()


async def test_devices_imported_while_running_are_seen_without_restart(live: Live) -> None:
    newcomer = DeviceIdentity.generate()
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    with pytest.raises(DeviceRefused):
        await SimDevice(newcomer, live.key).handshake(stream)
    await stream.aclose()
    # Another connection (as another process would) writes the same database.
    other = another_store(live)
    result = other.import_devices([(newcomer.device_id_hex, newcomer.key.public)], now=0.0)
    other.close()
    assert result.added == [newcomer.device_id_hex]
    async with connect_device(await trio.open_tcp_stream("127.0.0.1", live.port), newcomer, live.key) as dev:
        assert await dev.publish("hello") is AckResult.ACCEPTED


async def test_shutdown_says_goodbye_and_marks_devices_offline(tmp_path: Path, nursery: trio.Nursery) -> None:
    live = await start_live(tmp_path, nursery, devices=5)
    devices: list[SimDevice] = []
    streams: list[trio.SocketStream] = []
    async with trio.open_nursery() as inner:
        for identity in live.known:
            device = SimDevice(identity, live.key)
            streams.append(await trio.open_tcp_stream("127.0.0.1", live.port))
            await device.handshake(streams[-1])
            inner.start_soon(device.run)
            devices.append(device)
        assert await devices[0].publish("before-shutdown") is AckResult.ACCEPTED
        for device in devices:
            await device.ping()  # a PONG means the server has processed READY: the session is live
        assert len(live.server.ctx.registry) == 5
        live.server.shutdown()
    for stream in streams:
        await stream.aclose()
    assert all(d.closed is not None and d.closed.reason is CloseReason.SERVER_SHUTDOWN for d in devices)
    with trio.fail_after(10):
        await live.server.stopped.wait()
    reopened = another_store(live)
    assert not any(r.online for r in reopened.list_devices())
    assert len(reopened.list_events()) == 1
    reopened.close()
