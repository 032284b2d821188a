"""TailFeed, the cluster's way events reach a node's broker: from the events table in id order.

Here on SQLite, with a second store on the same file standing for another node's writer: its
events reach this node's subscribers (the direct feed never shows them), every event once and in
id order, interleaved with this node's own; and a device's ack still goes out at commit, before
the tail publishes the event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from server.events.broker import EventBroker
from server.events.feeds import EventFilter
from server.events.log import EventLog
from server.events.publishing import DirectFeed, TailFeed
from server.store import AsyncStore, SQLiteStore
from server.store.records import EventRecord

from .test_events_broker import drain

DEVICE = "aa" * 12
OTHER = "bb" * 12


@pytest.fixture
async def other_node(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[EventLog]:
    """Another writer on the same database, whose events this node's broker hears of only by reading."""
    writes = AsyncStore(SQLiteStore(tmp_path / "fleetgate.db"), inline=True)
    await nursery.start(writes.run_writer)
    yield EventLog(writes, DirectFeed(EventBroker()))
    await writes.close_writes()


async def test_events_reach_the_broker_from_the_table_in_id_order_once(
    writer_store: AsyncStore, other_node: EventLog, nursery: trio.Nursery
) -> None:
    broker = EventBroker()
    subscriber = broker.subscribe(EventFilter())
    feed = TailFeed(writer_store, broker, ring_others=False, poll=0.05)
    before = await other_node.append_and_wait(EventRecord(OTHER, "before start", b"", 60, True, 0.0))
    await nursery.start(feed.run)
    assert feed.cursor == before  # a stream replays older events from the store; the tail starts after them
    log = EventLog(writer_store, feed)
    for i in range(20):
        await log.append(EventRecord(DEVICE, f"mine {i}", b"", 60, True, float(i)))
        await other_node.append(EventRecord(OTHER, f"other {i}", b"", 60, True, float(i)))
    await writer_store.flush()
    last = await other_node.append_and_wait(EventRecord(OTHER, "last", b"", 60, True, 99.0))
    with trio.fail_after(2):
        while feed.cursor != last:  # noqa: ASYNC110 (the tail's cursor has no event to wait on)
            await trio.sleep(0.01)
    stored = writer_store.sync.list_events(after_id=before)
    got = drain(subscriber.receive)
    assert [e.id for e in got] == [e.id for e in stored]  # all, from both writers, once, in id order
    assert got == stored
    assert sum(e.device_id == OTHER for e in got) == 21


async def test_an_ack_goes_out_at_commit_before_the_tail_publishes(
    writer_store: AsyncStore, nursery: trio.Nursery
) -> None:
    broker = EventBroker()
    feed = TailFeed(writer_store, broker, ring_others=False, poll=60)  # no poll: this node's commit rings it
    await nursery.start(feed.run)
    order: list[str] = []
    broker.taps.append(lambda event: order.append(f"published {event.id}"))
    log = EventLog(writer_store, feed)
    await log.append(EventRecord(DEVICE, "t", b"", 60, True, 1.0), lambda result: order.append(f"acked {result}"))
    with trio.fail_after(2):
        while len(order) < 2:  # noqa: ASYNC110 (the tap has no event to wait on)
            await trio.sleep(0.01)
    (stored,) = writer_store.sync.list_events()
    assert order == [f"acked {stored.id}", f"published {stored.id}"]


async def test_the_webhooks_privilege_is_stored_with_the_event(writer_store: AsyncStore) -> None:
    """The leader's webhook dispatch reads events from the table: what the publisher held must be there."""
    log = EventLog(writer_store, DirectFeed(EventBroker()))
    with_hooks = await log.append_and_wait(EventRecord(DEVICE, "a", b"", 60, True, 1.0, product_id=7, webhooks=True))
    without = await log.append_and_wait(EventRecord(DEVICE, "b", b"", 60, True, 1.0, product_id=7))
    assert [(e.id, e.webhooks) for e in writer_store.sync.list_events()] == [(with_hooks, True), (without, False)]
    assert writer_store.sync.last_event_id() == without
