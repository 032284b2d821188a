"""EventLog.append, the one path by which events enter: stored, then published once; never published unstored."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from server.events.broker import EventBroker
from server.events.feeds import EventFilter
from server.events.log import EventLog, _Append
from server.events.publishing import DirectFeed
from server.store import AsyncStore, SQLiteStore
from server.store.records import EventRecord
from server.store.tx import StoreTx

from .test_events_broker import drain

DEVICE = "aa" * 12


async def test_an_appended_event_is_stored_then_published_once(writer_store: AsyncStore) -> None:
    broker = EventBroker()
    subscriber = broker.subscribe(EventFilter())
    log = EventLog(writer_store, DirectFeed(broker))
    order: list[str] = []
    broker.taps.append(lambda event: order.append(f"published {event.id}"))

    def then(result: object) -> None:
        stored = writer_store.sync.list_events()
        order.append(f"stored {[e.id for e in stored]} then {result}")

    event = EventRecord(DEVICE, "temp", b"21", 60, True, 5.0, product_id=7)
    await log.append(event, then)
    assert order == []  # queued: not stored, not published yet
    await writer_store.flush()
    (stored,) = writer_store.sync.list_events()
    assert stored.id is not None
    assert order == [f"stored [{stored.id}] then {stored.id}", f"published {stored.id}"]
    assert drain(subscriber.receive) == [event.with_id(stored.id)]  # once, with its ID
    await writer_store.flush()
    assert drain(subscriber.receive) == []


async def test_an_event_the_store_refuses_is_not_published(writer_store: AsyncStore) -> None:
    broker = EventBroker()
    subscriber = broker.subscribe(EventFilter())
    log = EventLog(writer_store, DirectFeed(broker))
    results: list[object] = []
    await log.append(EventRecord(DEVICE, None, b"", 60, True, 5.0), results.append)  # type: ignore[arg-type]
    await writer_store.flush()
    assert len(results) == 1 and isinstance(results[0], Exception)
    assert writer_store.sync.list_events() == [] and drain(subscriber.receive) == []


async def test_append_and_wait_returns_once_stored_and_published(writer_store: AsyncStore) -> None:
    broker = EventBroker()
    subscriber = broker.subscribe(EventFilter())
    log = EventLog(writer_store, DirectFeed(broker))
    event_id = await log.append_and_wait(EventRecord("api", "hello", b"", 60, False, 5.0, product_id=7))
    assert [e.id for e in writer_store.sync.list_events()] == [event_id]
    assert [e.id for e in drain(subscriber.receive)] == [event_id]
    with pytest.raises(Exception):  # noqa: B017  # the writer_store's own error (NOT NULL), raised to the caller
        await log.append_and_wait(EventRecord("api", None, b"", 60, False, 5.0))  # type: ignore[arg-type]
    assert drain(subscriber.receive) == []


async def test_appends_are_published_in_the_order_they_are_stored(writer_store: AsyncStore) -> None:
    broker = EventBroker()
    subscriber = broker.subscribe(EventFilter())
    log = EventLog(writer_store, DirectFeed(broker))
    for i in range(5):
        await log.append(EventRecord(DEVICE, f"e{i}", b"", 60, True, float(i)))
    await writer_store.flush()
    stored = writer_store.sync.list_events()
    assert [e.name for e in stored] == [f"e{i}" for i in range(5)]
    assert [(e.id, e.name) for e in drain(subscriber.receive)] == [(e.id, e.name) for e in stored]


class RecordingFeed:
    """A feed that keeps what it was told: published events, and the appends rung inside transactions."""

    def __init__(self) -> None:
        self.published: list[EventRecord] = []
        self.rung: list[int] = []
        self.committed = self.published.append

    def appended(self, tx: StoreTx, last_id: int) -> None:
        self.rung.append(last_id)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()


def test_consecutive_appends_in_a_batch_are_stored_as_one_group(tmp_path: Path) -> None:
    sync = SQLiteStore(tmp_path / "group.db")
    feed = RecordingFeed()
    published = feed.published
    ops = [_Append(EventRecord(DEVICE, f"e{i}", b"", 60, True, float(i)), feed, None) for i in range(3)]
    grouped: list[int] = []
    real = sync.append_events

    def spy(events: Sequence[EventRecord]) -> list[int]:
        grouped.append(len(events))
        return real(events)

    sync.append_events = spy  # type: ignore[method-assign]
    results = sync.write_batch(ops)
    assert grouped == [3]  # one multi-row insert, as AppendEvent's
    for op, result in zip(ops, results, strict=True):
        op(result)  # type: ignore[arg-type]  # write_batch returns each op's own result
    assert [(e.id, e.name) for e in published] == [(e.id, e.name) for e in sync.list_events()]
    assert feed.rung == [published[-1].id]  # the feed heard of the run once, with its last ID
