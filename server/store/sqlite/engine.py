"""The embedded default store: SQLite in WAL mode, one writer connection and one reader connection.

Each connection is used by one thread at a time (AsyncStore serialises them), so
`check_same_thread=False` is safe. Other processes (the CLI) may write the same file;
WAL lets the running server see their commits on its next read.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..base import Store
from ..batch import BatchApplier
from ..records import EventRecord
from ..secrets_key import FILE_NAME, SecretsKey
from ..writeop import WriteOp
from .domains import DomainQueries
from .migrations import MIGRATIONS
from .sealed import start_sealing

T = TypeVar("T")

_MAX_INSERT_ROWS = 64  # 576 parameters; beyond ~64 rows a statement saves no more
_INSERT_EVENTS = {
    rows: "INSERT INTO events (device_id, product_id, name, data, ttl, private, published_at, to_device, webhooks)"
    " VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    for rows in (1, 2, 4, 8, 16, 32, 64)
}


def _event_row(event: EventRecord) -> tuple[object, ...]:
    return (
        event.device_id,
        event.product_id,
        event.name,
        event.data,
        event.ttl,
        int(event.private),
        event.published_at,
        event.to_device,
        int(event.webhooks),
    )


# The writer connection does not checkpoint the WAL at commit (SQLite's default does, at 1,000
# pages: ~25 ms of copying and fsync in whichever commit crosses it). `write_batch`, which runs
# in the writer's thread, checkpoints instead when the pages it estimates it wrote reach this,
# so that a commit on the event loop (`write_batch_now`) never carries one.
_CHECKPOINT_PAGES = 1000
_BUSY_TIMEOUT_MS = 10000


def _pages_of(ops: Sequence[WriteOp[Any]]) -> int:
    """WAL pages a batch adds, roughly: its table and index leaves and the commit's own pages
    (a 64-byte event is ~130 bytes of row and index; a 4 KiB page holds ~30)."""
    return 3 + len(ops) // 16


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; WAL fsyncs at checkpoint
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    return conn


class SQLiteStore(DomainQueries, Store, BatchApplier):
    _w: sqlite3.Connection
    _r: sqlite3.Connection

    def __init__(self, path: Path, secrets_key: SecretsKey | None = None) -> None:
        """`secrets_key`: where the key of the sealed secrets is (default: secrets.key beside the
        database, created on first start). SecretsKeyError if it is not this database's."""
        self.path = path
        self._local = threading.local()
        self._w = _connect(path)
        self._w.execute("PRAGMA wal_autocheckpoint=0")  # write_batch checkpoints (see _CHECKPOINT_PAGES)
        self._wal_pages = 0  # estimated WAL pages written by this connection since its last checkpoint
        try:
            self._migrate()
            key = secrets_key if secrets_key is not None else SecretsKey.default_file(path.with_name(FILE_NAME))
            self._sealer = start_sealing(self._w, path, key)
        except BaseException:
            self._w.close()
            raise
        self._r = _connect(path)
        self._loop_reader = _connect(path)  # the event loop's own, so it never waits on _r's mutex

    def read_on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        previous = getattr(self._local, "reader", None)
        self._local.reader = self._loop_reader
        try:
            return fn(*args)
        finally:
            self._local.reader = previous

    def _migrate(self) -> None:
        w = self._w
        w.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        done = {v for (v,) in w.execute("SELECT version FROM schema_migrations")}
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            # executescript commits first; wrap the script so a failure leaves nothing half-applied.
            w.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n"
                f"INSERT INTO schema_migrations VALUES ({int(version)}, {time.time()!r});\nCOMMIT;"
            )

    # ------------------------------------------------------------------ writes

    def write_batch(self, ops: Sequence[WriteOp[Any]]) -> list[object]:
        self._w.execute("BEGIN IMMEDIATE")
        results = self._apply_and_commit(ops)
        if self._wal_pages >= _CHECKPOINT_PAGES:  # here, in the writer's thread: never on the loop
            self._wal_pages = 0
            self._w.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return results

    def write_batch_now(self, ops: Sequence[WriteOp[Any]]) -> list[object] | None:
        if self._wal_pages + _pages_of(ops) >= _CHECKPOINT_PAGES:
            return None  # a checkpoint is due (tens of ms): the next write_batch, in a thread, does it
        w = self._w
        w.execute("PRAGMA busy_timeout = 0")
        try:
            w.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # another process (the CLI) holds the write lock
            return None
        finally:
            w.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        return self._apply_and_commit(ops)

    def _apply_and_commit(self, ops: Sequence[WriteOp[Any]]) -> list[object]:
        """Apply ops inside the transaction just begun, and commit."""
        w = self._w
        self._local.in_batch = True
        self._hooks_begin()
        committed = False
        try:
            results = self._apply_ops(ops)
            w.execute("COMMIT")
            committed = True
        except BaseException:
            if w.in_transaction:
                w.execute("ROLLBACK")
            raise
        finally:
            self._local.in_batch = False
            self._hooks_end(committed)
        self._wal_pages += _pages_of(ops)
        return results

    def notice(self, channel: str, payload: str) -> None:
        raise NotImplementedError(
            "SQLite serves one process: there is no other node to notify (use after_commit, as LocalBus does)"
        )

    def append_event(self, event: EventRecord) -> int:
        cur = self._w.execute(_INSERT_EVENTS[1], _event_row(event))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def append_events(self, events: Sequence[EventRecord]) -> list[int]:
        """Multi-row INSERTs of up to 64 rows (a statement per power of two, so the statement
        cache holds seven): half the CPU of `executemany`, a third of one INSERT per event.
        The IDs are the last inserted row's ID counted back: `events.id` is AUTOINCREMENT, so
        each row gets one more than the largest ID the table ever held, the rows of a statement
        are inserted in VALUES order, and this connection holds the write lock (the batch's
        BEGIN IMMEDIATE), so the rows of one statement have consecutive IDs."""
        w = self._w
        ids: list[int] = []
        start, count = 0, len(events)
        while start < count:
            rows = min(_MAX_INSERT_ROWS, 1 << ((count - start).bit_length() - 1))
            args = [value for event in events[start : start + rows] for value in _event_row(event)]
            cur = w.execute(_INSERT_EVENTS[rows], args)
            last = cur.lastrowid
            assert last is not None and cur.rowcount == rows
            ids.extend(range(last - rows + 1, last + 1))
            start += rows
        return ids

    def ping(self) -> None:
        self._r.execute("SELECT 1").fetchone()  # the file is local: it answers while the process runs

    def reset_online(self) -> int:
        cur = self._w.execute("UPDATE devices SET online = 0 WHERE online = 1")
        return cur.rowcount

    def close(self) -> None:
        self._r.close()
        self._loop_reader.close()
        self._w.close()
