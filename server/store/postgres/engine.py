"""The PostgreSQL store: the store of record that several Fleetgate nodes can share.

psycopg 3's sync API in worker threads (AsyncStore): its async API runs only on asyncio. One
writer connection applies every write batch, in one transaction that first takes the WRITE
advisory lock (locks.py), so batches of all nodes apply one after another as SQLite's BEGIN
IMMEDIATE made them, and event IDs follow commit order. Reads outside a batch use a small pool.

Durability: the writer sets `synchronous_commit = off` (`synchronous_commit=False`, the default),
the counterpart of the SQLite store's `synchronous=NORMAL`: a commit survives Fleetgate crashing
(it is in PostgreSQL's memory and WAL buffers), and only a crash of PostgreSQL or its host within
about 3 x wal_writer_delay (0.6 s by default) loses the last commits. With `on`, each commit
waits for an fsync (2-5 ms on the benchmark machine's disk) and the writer, which holds the
cluster-wide write lock meanwhile, commits that much less often.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from ..base import Store
from ..batch import BatchApplier
from ..database import DatabaseUnavailable, describe_database
from ..records import EventRecord
from ..secrets_key import SecretsKey
from ..sqlite.domains import DomainQueries
from ..writeop import WriteOp
from . import locks
from .connection import PgConnection, PooledReader
from .migrations import MIGRATIONS
from .queries import PostgresQueries
from .sealed import start_sealing

T = TypeVar("T")

READERS = 4  # pooled reader connections, and so reads in flight at once (AsyncStore's limiter)
CONNECT_TIMEOUT = 10  # seconds, for each connection attempt


def _reason(exc: BaseException) -> str:
    """The driver's first line (the rest are hints), without psycopg's "connection failed: " prefix."""
    text = str(exc).strip()
    return text.splitlines()[0].removeprefix("connection failed: ").strip() if text else type(exc).__name__


def _connect(dsn: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"cannot connect to {describe_database(dsn)}: {_reason(exc)}") from None


class PostgresStore(PostgresQueries, DomainQueries, Store, BatchApplier):
    reads_on_loop: ClassVar[bool] = False  # a read is a network round trip: never on the event loop
    read_threads: ClassVar[int] = READERS
    _integrity_error: ClassVar[type[Exception]] = psycopg.IntegrityError
    _w: PgConnection
    _r: PooledReader

    def __init__(self, dsn: str, secrets_key: SecretsKey, *, synchronous_commit: bool = False) -> None:
        """`secrets_key`: the key of the sealed secrets (SecretsKeyError if it is not this database's).
        DatabaseUnavailable if the database cannot be reached."""
        self.dsn = dsn  # the cluster bus opens its own listener connection with it
        self.where = describe_database(dsn)
        self._synchronous_commit = synchronous_commit
        self._local = threading.local()
        self._unsent: list[str] = []  # the writer's statements held back for its next round trip
        raw = _connect(dsn)
        self._w = PgConnection(raw)
        self._pool: ConnectionPool[Any] | None = None
        try:
            if not synchronous_commit:
                raw.execute("SET synchronous_commit = off")
            self._migrate()
            self._sealer = start_sealing(self._w, self.where, secrets_key)
            self._pool = ConnectionPool(
                dsn,
                min_size=1,
                max_size=READERS,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                timeout=CONNECT_TIMEOUT,  # a read waits this long for a connection while the database is away
                open=True,
                name="fleetgate-readers",
            )
        except psycopg.Error as exc:  # a migration refused (permissions), or the server went away
            self.close()
            raise DatabaseUnavailable(f"cannot open {self.where}: {_reason(exc)}") from None
        except BaseException:
            self.close()
            raise
        self._r = PooledReader(self._pool)

    def _migrate(self) -> None:
        """Apply what is missing, under the MIGRATE lock: nodes starting at once apply each migration once."""
        w = self._w
        w.execute("SELECT pg_advisory_lock(?)", (locks.MIGRATE,))
        try:
            w.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint PRIMARY KEY,"
                " applied_at double precision NOT NULL)"
            )
            done = {v for (v,) in w.execute("SELECT version FROM schema_migrations")}
            for version, sql in MIGRATIONS:
                if version in done:
                    continue
                w.execute("BEGIN")
                try:
                    w.raw.execute(sql.encode())  # a script: no parameters, several statements
                    w.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
                    w.execute("COMMIT")
                except BaseException:
                    w.execute("ROLLBACK")
                    raise
        finally:
            w.execute("SELECT pg_advisory_unlock(?)", (locks.MIGRATE,))

    # ------------------------------------------------------------------ writes

    def write_batch(self, ops: Sequence[WriteOp[Any]]) -> list[object]:
        """As Store.write_batch; when the database cannot be reached, every op's result is
        DatabaseUnavailable (nothing committed, or, if the connection died at COMMIT, maybe
        committed: PostgreSQL's usual doubt) and the next batch connects again."""
        try:
            self._writer_connected()
            return self._write_batch(ops)
        except psycopg.OperationalError as exc:
            if not self._w.raw.closed:
                raise  # the connection is fine: not a lost database
            lost = DatabaseUnavailable(f"lost {self.where}: {_reason(exc)}")
            return [lost for _ in ops]
        except DatabaseUnavailable as exc:
            return [exc for _ in ops]

    def _writer_connected(self) -> None:
        """The writer's connection, opened again if the last one was lost (DatabaseUnavailable if it cannot be)."""
        if not self._w.raw.closed:
            return
        raw = _connect(self.dsn)
        try:
            if not self._synchronous_commit:
                raw.execute("SET synchronous_commit = off")
        except psycopg.Error as exc:
            raw.close()
            raise DatabaseUnavailable(f"cannot connect to {self.where}: {_reason(exc)}") from None
        self._w.raw = raw

    def _write_batch(self, ops: Sequence[WriteOp[Any]]) -> list[object]:
        w = self._w
        self._local.in_batch = True
        self._hooks_begin()
        committed = False
        # Sent with the first op's savepoint, in one round trip (_savepoint).
        self._unsent = ["BEGIN", f"SELECT pg_advisory_xact_lock({locks.WRITE})"]
        try:
            results = self._apply_ops(ops)
            if not self._unsent or self._unsent[0] != "BEGIN":  # else no op ran: nothing was begun
                w.raw.execute("COMMIT")  # which releases the last op's savepoint, held back
            committed = True
        except BaseException:
            if w.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):  # a connection gone already rolled back
                    w.raw.execute("ROLLBACK")
            raise
        finally:
            self._unsent = []
            self._local.in_batch = False
            self._hooks_end(committed)
        return results

    def _savepoint(self, name: str) -> None:
        """One round trip for the savepoint and what was held back before it: the batch's BEGIN and
        WRITE lock (first op), or the previous op's release. Several statements without parameters
        in one execute go as one simple query."""
        self._w.raw.execute("; ".join([*self._unsent, f"SAVEPOINT {name}"]))
        self._unsent = []

    def _release(self, name: str) -> None:
        """Held back: sent with the next op's savepoint; the COMMIT releases the last one."""
        self._unsent = [f"RELEASE SAVEPOINT {name}"]

    def notice(self, channel: str, payload: str) -> None:
        """Inside a write op: `pg_notify`, which PostgreSQL delivers to every listening session if
        and only if the transaction commits, in commit order (a failed op's savepoint takes it back)."""
        if not getattr(self._local, "in_batch", False):
            raise RuntimeError("notice outside a write batch")
        self._w.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def append_event(self, event: EventRecord) -> int:
        (event_id,) = self.append_events([event])
        return event_id

    def append_events(self, events: Sequence[EventRecord]) -> list[int]:
        """IDs are taken from the sequence first, then the rows inserted with them (one statement):
        the order of RETURNING is not documented. The batch holds the WRITE lock, so no other
        transaction takes IDs in between and the IDs follow commit order across nodes."""
        if not events:
            return []
        w = self._w
        ids = sorted(
            int(i)
            for (i,) in w.execute(
                "SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, ?)", (len(events),)
            )
        )
        w.execute(
            "INSERT INTO events (id, device_id, product_id, name, data, ttl, private, published_at, to_device,"
            " webhooks) SELECT * FROM unnest(?::bigint[], ?::text[], ?::bigint[], ?::text[], ?::bytea[],"
            " ?::bigint[], ?::integer[], ?::double precision[], ?::text[], ?::integer[])",
            (
                ids,
                [e.device_id for e in events],
                [e.product_id for e in events],
                [e.name for e in events],
                [e.data for e in events],
                [e.ttl for e in events],
                [int(e.private) for e in events],
                [e.published_at for e in events],
                [e.to_device for e in events],
                [int(e.webhooks) for e in events],
            ),
        )
        return ids

    def ping(self) -> None:
        self._r.execute("SELECT 1")

    def reset_online(self) -> int:
        return self._w.execute("UPDATE devices SET online = 0 WHERE online = 1").rowcount

    def reading(self, fn: Callable[[], T]) -> T:
        return self._r.pinned(fn)

    def read_on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)  # AsyncStore.read_now runs it in a worker thread (reads_on_loop is False)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._w.close()
