"""Device subscriptions end to end: real server, SimDevices over loopback TCP, operators acting live.

A device's `ping()` returning proves that everything the server queued for it before the PONG
(in particular every EVENT published before the ping was answered) has been read: the single
writer sends in queue order. That is how these tests show that nothing arrived.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from firmware_sim.cli import main as fleetsim_main
from firmware_sim.device import DeviceSettings, SimDevice, connect_device
from firmware_sim.identity import DeviceIdentity, write_identities
from protocol.codes import AckResult, CloseReason, Status, SubscribeResult
from protocol.connection import Connection, NeedData, Role
from protocol.messages import (
    EventMessage,
    Goodbye,
    Hello,
    MsgType,
    Subscribe,
    Welcome,
    encode_message,
)
from server.events.feeds import API_SOURCE, DEVICE_EVENT_QUEUE
from server.events.log import AppendEvent
from server.link.session import DeviceSession
from server.logs import now
from server.ops.operations import Operations
from server.rules.model import Policy
from server.store.records import EventRecord

from ..protocol.helpers import forge_plaintext, pack
from .conftest import Live, start_live

ADMIN = "user:admin"
P, Q = 5101, 5102


@pytest.fixture
async def live(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Live]:
    # Publishing as fast as the tests like: the rate limit is not what is tested here.
    running = await start_live(tmp_path, nursery, devices=8, publish_rate=10_000.0, publish_burst=10_000)
    ops = Operations(running.server.ctx)
    await ops.create_product(ADMIN, "Thermo", product_id=P, policy=Policy.QUARANTINE)
    await ops.create_product(ADMIN, "Other", product_id=Q, policy=Policy.QUARANTINE)
    yield running
    running.server.shutdown()


@pytest.fixture
def ops(live: Live) -> Operations:
    return Operations(live.server.ctx)


@asynccontextmanager
async def device(live: Live, identity: DeviceIdentity, product: int | None = P) -> AsyncIterator[SimDevice]:
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    async with connect_device(stream, identity, live.key, DeviceSettings(product_id=product)) as dev:
        await dev.ping()  # answered: READY was processed and the session is registered
        yield dev


def session_of(live: Live, identity: DeviceIdentity) -> DeviceSession:
    found = live.server.ctx.registry.get(identity.device_id_hex)
    assert isinstance(found, DeviceSession)
    return found


async def next_event(dev: SimDevice) -> EventMessage:
    with trio.fail_after(5):
        return await dev.receive_event()


async def nothing_arrived(*devices: SimDevice) -> None:
    for dev in devices:
        await dev.ping()
        assert dev.events_received == 0, dev.device_id


async def members(ops: Operations, product: int, *identities: DeviceIdentity) -> None:
    for identity in identities:
        await ops.add_device(ADMIN, product, identity.device_id_hex)


async def cloud_event(live: Live, record: EventRecord) -> EventRecord:
    """Store an event and hand it to the broker, as the API and the webhooks do."""
    event_id = await live.server.ctx.store.write(AppendEvent(record))
    assert isinstance(event_id, int)
    stored = replace(record, id=event_id)
    live.server.ctx.events.publish(stored)
    return stored


async def test_a_subscriber_receives_the_matching_events_of_its_products_other_devices(
    live: Live, ops: Operations
) -> None:
    a, b, c = live.known[:3]
    await members(ops, P, a, b)
    await members(ops, Q, c)
    async with device(live, a) as pub, device(live, b) as sub, device(live, c, Q) as elsewhere:
        for dev in (pub, sub, elsewhere):
            assert await dev.subscribe("temp") is SubscribeResult.ACCEPTED
        before = now()
        for name in ("temp/x", "humidity", "temp/y"):
            assert await pub.publish(name, name.encode() + b"-data", ttl=120) is AckResult.ACCEPTED
        first, second = await next_event(sub), await next_event(sub)
        assert [(e.name, e.data) for e in (first, second)] == [("temp/x", b"temp/x-data"), ("temp/y", b"temp/y-data")]
        assert first.source == a.device_id and not first.to_device and first.ttl == 120 and first.skipped == 0
        assert first.event_id < second.event_id
        assert before - 1 <= first.published_at_ms / 1000 <= now() + 1
        # Its own events are not echoed to the publisher; another product's devices see nothing.
        await nothing_arrived(pub, elsewhere)
        await sub.ping()
        assert sub.events_received == 2
        assert session_of(live, b).events_delivered == 2
        # An event published through the API to the product comes from the cloud: no source.
        await cloud_event(live, EventRecord(API_SOURCE, "temp/setpoint", b"21", 60, True, now(), product_id=P))
        api_event = await next_event(sub)
        assert (api_event.name, api_event.source, api_event.to_device) == ("temp/setpoint", None, False)


async def test_a_quarantined_subscriber_gets_events_only_while_approved(live: Live, ops: Operations) -> None:
    member, stranger = live.known[:2]
    await members(ops, P, member)
    async with device(live, member) as pub, device(live, stranger) as sub:
        assert sub.state.status is Status.QUARANTINED
        # Accepted while unprivileged: the privileges at each event's publication decide.
        assert await sub.subscribe("temp") is SubscribeResult.ACCEPTED
        await pub.publish("temp/while-quarantined")
        await nothing_arrived(sub)

        assert await ops.add_device(ADMIN, P, stranger.device_id_hex) == "approved"
        with trio.fail_after(5):
            await sub.wait_status(Status.OK)  # no reconnect, no new SUBSCRIBE
        await pub.publish("temp/approved")
        assert (await next_event(sub)).name == "temp/approved"

        await ops.remove_device(ADMIN, P, stranger.device_id_hex, deny=True)
        with trio.fail_after(5):
            await sub.wait_status(Status.DENIED)
        await pub.publish("temp/denied")
        await sub.ping()
        assert sub.events_received == 1


async def test_denied_and_mismatched_devices_receive_nothing(live: Live, ops: Operations) -> None:
    member, denied, mismatched = live.known[:3]
    await members(ops, P, member, denied)
    await ops.remove_device(ADMIN, P, denied.device_id_hex, deny=True)
    await members(ops, Q, mismatched)  # a member of Q running P's firmware: limited everywhere
    async with device(live, member) as pub, device(live, denied) as d, device(live, mismatched) as m:
        assert (d.state.status, m.state.status) == (Status.DENIED, Status.QUARANTINED)
        for dev in (d, m):
            assert await dev.subscribe("") is SubscribeResult.ACCEPTED  # "" matches every name
        await pub.publish("temp/1")
        await nothing_arrived(d, m)


async def test_development_firmware_is_not_permitted_to_subscribe(live: Live, ops: Operations) -> None:
    identity = live.known[0]
    async with device(live, identity, None) as dev:
        assert dev.state.status is Status.DEVELOPMENT
        assert await dev.subscribe("temp") is SubscribeResult.NOT_PERMITTED
        assert dev.subscriptions == set()
        await dev.ping()  # the link stays up
    assert live.server.ctx.events.device_feeds() == 0


async def test_an_event_addressed_to_a_device_reaches_that_device_only(live: Live, ops: Operations) -> None:
    target, neighbour, stranger = live.known[:3]
    await members(ops, P, target, neighbour)
    async with device(live, target) as t, device(live, neighbour) as n, device(live, stranger) as s:
        for dev in (t, n, s):
            assert await dev.subscribe("hook-response/") is SubscribeResult.ACCEPTED
        hook = EventRecord(
            target.device_id_hex,
            "hook-response/temp/0",
            b'{"ok":true}',
            60,
            True,
            now(),
            to_device=target.device_id_hex,
        )
        stored = await cloud_event(live, hook)
        got = await next_event(t)
        assert (got.name, got.data, got.source, got.to_device) == (hook.name, hook.data, None, True)
        assert got.event_id == stored.id
        # Not to the device's product neighbours, and not to a device without the webhooks
        # privilege even when addressed to it.
        await cloud_event(live, replace(hook, device_id=stranger.device_id_hex, to_device=stranger.device_id_hex))
        await nothing_arrived(n, s)
        # A prefix that does not match: nothing either.
        await cloud_event(live, replace(hook, name="other/thing"))
        await t.ping()
        assert t.events_received == 1


async def test_the_subscription_limit_refuses_and_keeps_the_link(
    live: Live, ops: Operations, caplog: pytest.LogCaptureFixture
) -> None:
    identity = live.known[0]
    await members(ops, P, identity)
    async with device(live, identity) as dev:
        limit = 12
        for i in range(limit):
            assert await dev.subscribe(f"p{i}/") is SubscribeResult.ACCEPTED
        assert await dev.subscribe("p0/") is SubscribeResult.ACCEPTED  # held already: not counted
        assert await dev.subscribe("one-too-many") is SubscribeResult.TOO_MANY
        await dev.ping()
        assert dev.closed is None
        feed = session_of(live, identity).feed
        assert feed is not None and len(feed.prefixes) == limit
        assert await dev.unsubscribe("p3/") is SubscribeResult.ACCEPTED
        assert await dev.unsubscribe("never-held") is SubscribeResult.ACCEPTED
        assert await dev.subscribe("one-too-many") is SubscribeResult.ACCEPTED
        assert await dev.unsubscribe(None) is SubscribeResult.ACCEPTED
        assert feed.prefixes == set() and dev.subscriptions == set()
    refused = [r for r in caplog.records if r.getMessage() == "subscription_refused"]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING
    assert refused[0].fields["result"] == "too_many"  # type: ignore[attr-defined]
    with trio.fail_after(5):
        await live.server.ctx.registry.wait_gone(identity.device_id_hex)
    assert live.server.ctx.events.device_feeds() == 0  # subscriptions end with the connection


async def test_a_subscriber_that_does_not_read_holds_up_nobody(live: Live, ops: Operations) -> None:
    publisher, slow_id, fast_id = live.known[:3]
    await members(ops, P, publisher, slow_id, fast_id)
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow = SimDevice(slow_id, live.key, DeviceSettings(product_id=P, heartbeat=False))
    count, data = 200, bytes(1000)
    async with trio.open_nursery() as nursery:
        await slow.handshake(stream)
        reading = trio.CancelScope()

        async def run_slow() -> None:
            with reading:
                await slow.run()

        nursery.start_soon(run_slow)
        assert await slow.subscribe("temp") is SubscribeResult.ACCEPTED
        session = session_of(live, slow_id)
        session.transport.stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # type: ignore[attr-defined]
        reading.cancel()  # the slow device stops reading its socket
        async with device(live, publisher) as pub, device(live, fast_id) as fast:
            assert await fast.subscribe("temp") is SubscribeResult.ACCEPTED
            with trio.fail_after(20):
                results = [await pub.publish("temp/reading", data) for _ in range(count)]
                assert results == [AckResult.ACCEPTED] * count
                received = [await fast.receive_event() for _ in range(count)]
            assert all(e.skipped == 0 for e in received) and fast.events_dropped == 0
            # The slow one fell behind: its events were skipped and counted, its link kept.
            assert session.events_skipped > 0 and session.close_reason is None
            assert session.events_delivered + session.events_skipped == count
            # Reading again, it learns how many it missed from the EVENTs' `skipped`.
            nursery.start_soon(slow.run)
            with trio.fail_after(10):
                while session.transport.events_queued:  # noqa: ASYNC110 (the writer drains it)
                    await trio.sleep(0.01)
                await pub.publish("temp/last", b"x")
                names: list[str] = []
                while not names or names[-1] != "temp/last":
                    names.append((await slow.receive_event()).name)
            assert len(names) == session.events_delivered and slow.events_dropped == 0
            assert slow.events_skipped == session.events_skipped
        await slow.goodbye()
        nursery.cancel_scope.cancel()
    await trio.aclose_forcefully(stream)


async def test_a_burst_beyond_the_queue_is_skipped_and_reported(live: Live, ops: Operations) -> None:
    identity = live.known[0]
    await members(ops, P, identity)
    async with device(live, identity) as dev:
        assert await dev.subscribe("burst") is SubscribeResult.ACCEPTED
        # Stored first, then published all at once without yielding: the session's writer cannot
        # run in between, so exactly DEVICE_EVENT_QUEUE fit and the rest are skipped.
        store = live.server.ctx.store
        records = []
        for i in range(DEVICE_EVENT_QUEUE + 10):
            record = EventRecord(API_SOURCE, f"burst/{i}", b"", 60, True, now(), product_id=P)
            event_id = await store.write(AppendEvent(record))
            assert isinstance(event_id, int)
            records.append(replace(record, id=event_id))
        for record in records:
            live.server.ctx.events.publish(record)
        got = [await next_event(dev) for _ in range(DEVICE_EVENT_QUEUE)]
        assert [e.name for e in got] == [f"burst/{i}" for i in range(DEVICE_EVENT_QUEUE)]
        assert all(e.skipped == 0 for e in got)
        await cloud_event(live, EventRecord(API_SOURCE, "burst/after", b"", 60, True, now(), product_id=P))
        after = await next_event(dev)
        assert (after.name, after.skipped) == ("burst/after", 10)
        assert session_of(live, identity).events_skipped == dev.events_skipped == 10


async def test_a_malformed_subscribe_closes_with_message_invalid(live: Live, ops: Operations) -> None:
    identity = live.known[0]
    await members(ops, P, identity)
    async with device(live, identity) as dev:
        assert dev._stream is not None
        bad = pack([int(MsgType.SUBSCRIBE), 1, "p" * 65])  # one byte over the prefix limit
        await dev._stream.send_all(forge_plaintext(dev.conn, bad))
        with trio.fail_after(5):
            await dev.closed_event.wait()
        assert dev.closed is not None and dev.closed.reason is CloseReason.MESSAGE_INVALID


async def test_a_subscribe_before_ready_closes_with_unexpected_message(live: Live) -> None:
    identity = live.known[0]
    conn = Connection(Role.CLIENT, identity.key, server_public_key=live.key)
    stream = await trio.open_tcp_stream("127.0.0.1", live.port)
    async with stream:
        hello = Hello(identity.device_id, P, 1, 6, 1_000_000 + int(now()))
        await stream.send_all(conn.send(hello))

        async def next_message() -> object:
            while isinstance(event := conn.next_event(), NeedData):
                conn.receive_data(await stream.receive_some(65536))
            return event

        with trio.fail_after(5):
            assert isinstance(await next_message(), Welcome)
            # Subscribe in place of READY (the Connection itself would refuse to send it).
            await stream.send_all(forge_plaintext(conn, encode_message(Subscribe(1, "temp"))))
            goodbye = await next_message()
    assert isinstance(goodbye, Goodbye) and goodbye.reason is CloseReason.UNEXPECTED_MESSAGE
    assert live.server.ctx.events.device_feeds() == 0


async def test_fleetsim_listen_prints_the_events(
    live: Live, ops: Operations, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listener, publisher = live.known[:2]
    await members(ops, P, listener, publisher)
    ids = tmp_path / "ids"
    write_identities(ids, [publisher, listener])
    key = tmp_path / "server.pub"
    key.write_text(live.key.hex())
    argv = ["listen", "--server", f"127.0.0.1:{live.port}", "--server-key", str(key), "--identities", str(ids),
            "--device", listener.device_id_hex, "--product", str(P), "--subscribe", "temp", "--subscribe", "",
            "--events", "2", "--hold", "20", "--json"]  # fmt: skip
    async with trio.open_nursery() as nursery:
        codes: list[int] = []

        async def listen() -> None:
            codes.append(await trio.to_thread.run_sync(fleetsim_main, argv))

        nursery.start_soon(listen)
        with trio.fail_after(10):
            while True:  # the listener (in another thread) has connected and subscribed twice
                found = live.server.ctx.registry.get(listener.device_id_hex)
                feed = found.feed if isinstance(found, DeviceSession) else None
                if feed is not None and len(feed.prefixes) == 2:
                    break
                await trio.sleep(0.02)
        async with device(live, publisher) as pub:
            await pub.publish("temp/a", b"1")
            await pub.publish("other", "\u00e9".encode())
    assert codes == [0]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["name"], e["data"], e["source"]) for e in lines[:2]] == [
        ("temp/a", "1", publisher.device_id_hex),
        ("other", "\u00e9", publisher.device_id_hex),
    ]
    summary = lines[2]["summary"]
    assert summary["events"] == 2 and summary["status"] == "ok"
    assert summary["subscriptions"] == {"temp": "accepted", "": "accepted"}
