"""Migration 17: a device's events are found through an index the writer fills in bulk, plus the
unindexed tail after its mark. Every per-device reader must give what a full scan gives, whether
the events it wants are indexed, in the tail, or on both sides of the mark."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from server.events.log import AppendEvent
from server.store import SQLiteStore, Store
from server.store.records import EventRecord
from server.store.sqlite import device_events
from server.store.sqlite.migrations import MIGRATIONS
from tests.server.store.conftest import OpenStore

DEVICES = ("aa" * 12, "bb" * 12, "cc" * 12)
PRODUCTS = (1, 2, None)
NAMES = ("temp", "temp/in", "hum", "t")


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


def mark(store: Store) -> int:
    (upto,) = store._q.execute("SELECT upto FROM event_index_mark").fetchone()  # type: ignore[attr-defined]
    return int(upto)


def indexed_ids(store: Store) -> list[int]:
    rows = store._q.execute("SELECT id FROM event_device_index ORDER BY id")  # type: ignore[attr-defined]
    return [int(i) for (i,) in rows]


def append(store: Store, events: list[EventRecord]) -> list[int]:
    results = store.write_batch([AppendEvent(e) for e in events])
    assert all(isinstance(i, int) for i in results)
    return [int(i) for i in results]  # type: ignore[call-overload]


def id_of(event: EventRecord) -> int:
    assert event.id is not None
    return event.id


def ids(events: list[EventRecord]) -> list[int]:
    return [id_of(e) for e in events]


def check_every_reader(store: Store, stored: list[EventRecord], rng: random.Random) -> None:
    """Each per-device read against the same question asked of all stored events in Python."""
    top = id_of(stored[-1]) + 2
    for device in DEVICES:
        mine = [e for e in stored if e.device_id == device]
        after, before, limit = rng.randrange(0, top), rng.randrange(1, top + 1), rng.randrange(1, 6)
        assert ids(store.list_events(device)) == ids(mine)
        page = store.list_events(device, after_id=after, limit=limit)
        assert ids(page) == [i for i in ids(mine) if i > after][:limit]
        for product in (1, 2):
            routed = [e for e in mine if e.product_id == product]
            assert store.list_events(device, product_id=product) == routed
            assert store.event_history(product, device_id=device, limit=1000) == routed
            page = store.event_history(product, device_id=device, after_id=after, limit=limit)
            assert ids(page) == [i for i in ids(routed) if i > after][:limit]
            page = store.event_history(product, device_id=device, after_id=after, before_id=before, limit=limit)
            assert ids(page) == [i for i in ids(routed) if after < i < before][-limit:]
            prefix = rng.choice(NAMES)
            page = store.event_history(product, device_id=device, prefix=prefix, limit=1000)
            assert page == [e for e in routed if e.name.startswith(prefix)]
            recent = store.recent_device_events(product, device, limit)
            assert [(e.id, e.name, e.data) for e in recent] == [(e.id, e.name, e.data) for e in routed[::-1][:limit]]


@pytest.mark.parametrize("seed", [1, 2])
def test_readers_see_indexed_and_tail_events_alike(store: Store, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_events, "INDEX_EVERY", 7)
    rng = random.Random(seed)
    stored: list[EventRecord] = []
    seen_split = False
    for batch in range(14):
        events = [
            EventRecord(device, name, bytes([batch, n]), 60, True, float(batch), product_id=product)
            for n in range(rng.randrange(1, 9))
            for device, name, product in [(rng.choice(DEVICES), rng.choice(NAMES), rng.choice(PRODUCTS))]
        ]
        new_ids = append(store, events)
        stored += [e.with_id(i) for e, i in zip(events, new_ids, strict=True)]
        # The index holds exactly the events up to its mark; the mark is behind by < INDEX_EVERY.
        assert indexed_ids(store) == [i for i in ids(stored) if i <= mark(store)]
        assert id_of(stored[-1]) - mark(store) < 7 + len(events)
        seen_split |= 0 < mark(store) < id_of(stored[-1])
        check_every_reader(store, stored, rng)
    assert seen_split  # the readers were asked while events sat on both sides of the mark


def test_the_writer_indexes_in_bulk_not_per_event(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_events, "INDEX_EVERY", 10)
    appended = append(store, [EventRecord(DEVICES[i % 3], "temp", b"1", 60, True, 1.0) for i in range(9)])
    assert appended[-1] == 9 and mark(store) == 0 and indexed_ids(store) == []
    assert [e.id for e in store.list_events(DEVICES[0])] == [1, 4, 7]  # all from the tail
    appended += append(store, [EventRecord(DEVICES[0], "temp", b"1", 60, True, 1.0) for _ in range(3)])
    assert mark(store) == 12 and indexed_ids(store) == appended  # the step at 10 indexed all 12
    assert [e.id for e in store.list_events(DEVICES[0])] == [1, 4, 7, 10, 11, 12]


def test_migration_17_indexes_the_events_already_stored(tmp_path: Path) -> None:
    path = tmp_path / "fleetgate.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, sql in MIGRATIONS:
        if version < 17:
            old.executescript(f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES ({version}, 0);\nCOMMIT;")
    for i in range(5):
        old.execute(
            "INSERT INTO events (device_id, product_id, name, data, ttl, private, published_at)"
            " VALUES (?, 1, 'temp', x'00', 60, 1, 0)",
            (DEVICES[i % 2],),
        )
    old.close()

    store = SQLiteStore(path)
    assert store.schema_version >= 17
    assert mark(store) == 5 and indexed_ids(store) == [1, 2, 3, 4, 5]
    assert [e.id for e in store.list_events(DEVICES[1])] == [2, 4]
    assert store._q.execute("SELECT name FROM sqlite_master WHERE name = 'events_by_device'").fetchall() == []
    store.close()
