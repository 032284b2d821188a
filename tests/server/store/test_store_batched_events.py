"""Batched event appends: a write batch's events go in as multi-row INSERTs, and each op still
gets its own event's ID (counted back from the last row: proven here by reading the rows back),
with a bad op failing alone. Small batches may be applied on the event loop (write_batch_now),
but never by waiting for another process's write lock or carrying a WAL checkpoint. The tests
of `any_store` run on PostgreSQL too (IDs from its sequence, taken under the write lock)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from server.events.log import AppendEvent
from server.link.writes import MarkDisconnected
from server.store import AsyncStore, SQLiteStore, Store, StoreClosed, Transaction, WriteOp
from server.store.records import EventRecord
from server.store.sqlite import engine as sqlite_module
from server.store.tx import StoreTx
from tests.server.store.conftest import OpenStore, integrity_error

KEY = bytes(range(32))
DEVICE = "aa" * 12


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "fleetgate.db")
    s.import_devices([(DEVICE, KEY)], now=1.0)
    return s


@pytest.fixture
def any_store(open_store: OpenStore) -> Store:
    """SQLite, then PostgreSQL (whose IDs come from its sequence, taken under the write lock)."""
    s = open_store()
    s.import_devices([(DEVICE, KEY)], now=1.0)
    return s


def append(i: int, data: bytes = b"x") -> AppendEvent:
    return AppendEvent(EventRecord(DEVICE, f"e{i}", data, 60, i % 2 == 0, 1000.0 + i, product_id=i % 3 or None))


class Explode(WriteOp[None]):
    def apply(self, store: StoreTx) -> None:
        raise RuntimeError("boom")


def by_id(store: Store) -> dict[int, EventRecord]:
    return {e.id: e for e in store.list_events(limit=10_000) if e.id is not None}


@pytest.mark.parametrize("count", [1, 2, 3, 63, 64, 65, 127, 200, 512])
def test_each_append_gets_the_id_of_its_own_row(any_store: Store, count: int) -> None:
    store = any_store
    store.write_batch([append(-1)])  # the table is not empty: IDs do not start at 1
    ops = [append(i, data=bytes([i % 256]) * (i % 7)) for i in range(count)]
    results = store.write_batch(ops)
    ids = [i for i in results if isinstance(i, int)]
    assert len(ids) == count and ids == sorted(ids) and len(set(ids)) == count
    rows = by_id(store)
    for op, event_id in zip(ops, ids, strict=True):
        assert isinstance(event_id, int)
        row = rows[event_id]
        assert (row.name, row.data, row.private, row.published_at, row.product_id) == (
            op.event.name, op.event.data, op.event.private, op.event.published_at, op.event.product_id,
        )  # fmt: skip


def test_ids_never_reuse_a_deleted_last_id(store: SQLiteStore) -> None:
    last = store.write_batch([append(i) for i in range(10)])[-1]
    assert isinstance(last, int)
    store._w.execute("DELETE FROM events WHERE id >= ?", (last - 4,))  # the newest five are gone
    again = store.write_batch([append(i) for i in range(100, 110)])
    assert again[0] == last + 1  # AUTOINCREMENT: the counted-back IDs follow the largest ever
    assert [by_id(store)[i].name for i in again if isinstance(i, int)] == [f"e{i}" for i in range(100, 110)]


def test_runs_of_appends_between_other_ops_keep_their_order(any_store: Store) -> None:
    store = any_store
    ops: list[WriteOp[Any]] = [
        append(0),
        append(1),
        MarkDisconnected(DEVICE, 5.0),
        append(2),
        Explode(),
        append(3),
        append(4),
    ]
    results = store.write_batch(ops)
    assert results[2] is None and isinstance(results[4], RuntimeError)
    ids = [r for r in results if isinstance(r, int)]
    assert len(ids) == 5 and ids == sorted(ids)
    assert [by_id(store)[i].name for i in ids] == ["e0", "e1", "e2", "e3", "e4"]


def test_a_bad_event_in_a_run_fails_alone(any_store: Store) -> None:
    store = any_store
    bad = AppendEvent(EventRecord(DEVICE, None, b"", 60, True, 1.0))  # type: ignore[arg-type]  # NOT NULL
    ops: list[WriteOp[Any]] = [append(0), append(1), bad, append(3)]
    results = store.write_batch(ops)
    assert isinstance(results[2], integrity_error(store))
    ids = [r for r in (results[0], results[1], results[3]) if isinstance(r, int)]
    assert len(ids) == 3
    assert [by_id(store)[i].name for i in ids] == ["e0", "e1", "e3"]
    assert len(store.list_events()) == 3  # nothing of the failed group attempt is left behind


def test_write_batch_now_applies_or_declines_without_waiting(store: SQLiteStore, tmp_path: Path) -> None:
    (event_id,) = store.write_batch_now([append(0)]) or [None]
    assert isinstance(event_id, int) and by_id(store)[event_id].name == "e0"
    other = sqlite3.connect(tmp_path / "fleetgate.db", isolation_level=None)  # another process, say the CLI
    other.execute("BEGIN IMMEDIATE")
    assert store.write_batch_now([append(1)]) is None  # at once, not after the 10 s busy timeout
    other.execute("ROLLBACK")
    other.close()
    assert store.write_batch_now([append(2)]) is not None
    assert [e.name for e in store.list_events()] == ["e0", "e2"]


def test_a_due_checkpoint_is_left_to_write_batch(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "_CHECKPOINT_PAGES", 10)
    while store.write_batch_now([append(0)]) is not None:
        pass
    assert store._wal_pages > 0
    store.write_batch([append(1)])  # in the writer's thread: checkpoints
    assert store._wal_pages == 0
    assert store.write_batch_now([append(2)]) is not None


async def test_the_writer_applies_small_batches_on_the_loop_and_large_ones_in_a_thread(store: SQLiteStore) -> None:
    writes = AsyncStore(store)
    acked: list[object] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run_writer)
        event_id = await writes.write(append(0))
        assert isinstance(event_id, int) and writes.batches_on_loop == 1
        gate, entered = threading.Event(), threading.Event()

        def hold(_: StoreTx) -> None:  # holds the writer in its thread while the appends queue up
            entered.set()
            gate.wait(10)

        nursery.start_soon(writes.write, Transaction(hold, "hold"))
        await trio.to_thread.run_sync(entered.wait, 10)
        for i in range(300):  # queued together: one batch, too big for the loop
            await writes.submit(append(i + 1), acked.append)
        gate.set()
        await writes.flush()
        assert writes.batches_on_loop == 1
        await writes.write(Transaction(lambda s: None))  # not a small op: in a thread
        assert writes.batches_on_loop == 1
        await writes.close_writes()
    ids = [i for i in acked if isinstance(i, int)]
    assert len(ids) == 300 and ids == list(range(event_id + 1, event_id + 301))
    assert [by_id(store)[i].name for i in ids] == [f"e{i + 1}" for i in range(300)]


def test_with_id_is_replace_with_the_id() -> None:
    from dataclasses import fields, replace

    event = EventRecord("bb" * 12, "n", b"d", 7, False, 2.5, product_id=3, id=None, to_device="cc" * 12, webhooks=True)
    assert event.with_id(42) == replace(event, id=42)
    assert len(fields(EventRecord)) == 10  # with_id names every field: a new one must be added there


async def test_try_submit_queues_without_yielding_until_the_queue_is_full(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.store.runner.WRITE_QUEUE", 3)
    writes = AsyncStore(store)
    acked: list[object] = []
    # No writer yet: nothing leaves the queue, and nothing here gives the scheduler a turn.
    with trio.testing.assert_no_checkpoints():
        assert [writes.try_submit(append(i), acked.append) for i in range(4)] == [True, True, True, False]
    async with trio.open_nursery() as nursery:
        await nursery.start(writes.run_writer)
        await writes.flush()
        assert len(acked) == 3 and all(isinstance(i, int) for i in acked)  # each acked after its commit
        await writes.close_writes()
    with pytest.raises(StoreClosed):
        writes.try_submit(append(9))
