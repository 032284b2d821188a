"""Two nodes' stores on one PostgreSQL database, each with its TailFeed woken by its PgBus: every
event either node stores reaches both nodes' brokers once, in id order, and a node hears of the
other's events by the fg_events doorbell (its poll is set far beyond the test's wait)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from server.cluster import ControlMessage
from server.cluster.pg import PgBus
from server.events.broker import EventBroker
from server.events.feeds import EventFilter, Subscription
from server.events.log import EventLog
from server.events.publishing import TailFeed
from server.store import AsyncStore
from server.store.postgres import PostgresStore
from server.store.records import EventRecord
from server.store.secrets_key import SecretsKey

from ..events.test_events_broker import drain

pytestmark = pytest.mark.postgres


@dataclass
class Node:
    store: AsyncStore
    feed: TailFeed
    log: EventLog
    subscriber: Subscription


async def ignore(message: ControlMessage) -> None:
    await trio.lowlevel.checkpoint()


@asynccontextmanager
async def node(dsn: str, tmp_path: Path, name: str) -> AsyncIterator[Node]:
    sync = PostgresStore(dsn, SecretsKey.chosen(b"k" * 32, None, tmp_path / "secrets.key"))
    store = AsyncStore(sync)
    broker = EventBroker()
    feed = TailFeed(store, broker, poll=60)  # no poll within the test: only doorbells wake it
    bus = PgBus(dsn, name, ignore, on_events=feed.ring)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run_writer)
            await nursery.start(feed.run)
            await nursery.start(bus.run)
            yield Node(store, feed, EventLog(store, feed), broker.subscribe(EventFilter()))
            await store.close_writes()
            nursery.cancel_scope.cancel()
    finally:
        sync.close()


async def publish(at: Node, device: str, count: int) -> None:
    for i in range(count):
        await at.log.append(EventRecord(device, f"{device[:2]}-{i}", b"x", 60, False, float(i)))
        if i % 7 == 0:
            await trio.sleep(0.001)  # let the other node's batches interleave with this one's


async def test_every_nodes_events_reach_every_node_once_in_id_order(pg_dsn: str, tmp_path: Path) -> None:
    async with node(pg_dsn, tmp_path, "n1") as n1, node(pg_dsn, tmp_path, "n2") as n2:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish, n1, "aa" * 12, 300)
            nursery.start_soon(publish, n2, "bb" * 12, 300)
        await n1.store.flush()
        await n2.store.flush()
        last = n1.store.sync.last_event_id()
        with trio.fail_after(3):
            while n1.feed.cursor != last or n2.feed.cursor != last:  # noqa: ASYNC110 (no event for a cursor)
                await trio.sleep(0.01)
        stored = n1.store.sync.list_events(limit=1000)
        assert len(stored) == 600
        for at in (n1, n2):
            got = drain(at.subscriber.receive)
            assert [e.id for e in got] == [e.id for e in stored]  # every event once, in id order


async def test_another_nodes_event_arrives_by_the_doorbell(pg_dsn: str, tmp_path: Path) -> None:
    async with node(pg_dsn, tmp_path, "n1") as n1, node(pg_dsn, tmp_path, "n2") as n2:
        event_id = await n1.log.append_and_wait(EventRecord("aa" * 12, "t", b"", 60, False, 1.0))
        with trio.fail_after(1):  # the poll is 60 s: only n1's notice can bring it this soon
            while n2.feed.cursor != event_id:  # noqa: ASYNC110 (no event for a cursor)
                await trio.sleep(0.005)
        assert [e.id for e in drain(n2.subscriber.receive)] == [event_id]
