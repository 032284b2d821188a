"""Leadership: the holder of a session advisory lock on its own connection runs the cluster's
singletons. PostgreSQL frees the lock the moment that connection ends (a node killed with -9
included), and another node's next try takes it.

Each acquisition bumps a stored epoch (the fencing token): a leader's epoch is the largest ever
handed out while it leads, so a write guarded by `epoch = mine` cannot come from a leader that
has been replaced. The lock's connection is checked every `poll` seconds; if the check fails the
leadership is lost and whatever runs under it is cancelled.
"""

from __future__ import annotations

import logging

import psycopg
import trio

from ...logs import log_event
from .connect import close, connect

log = logging.getLogger("fleetgate.cluster")

LEADER_LOCK = 0x466C6733_0001  # the advisory lock key of the cluster's leader ("Flg3", 1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_leader (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch bigint NOT NULL,
    node_id text NOT NULL,
    since double precision NOT NULL
)"""

_BUMP = """
INSERT INTO cluster_leader (one, epoch, node_id, since) VALUES (true, 1, %(node)s, extract(epoch FROM now()))
ON CONFLICT (one) DO UPDATE SET epoch = cluster_leader.epoch + 1, node_id = EXCLUDED.node_id, since = EXCLUDED.since
RETURNING epoch"""


class LeaderLock:
    def __init__(self, dsn: str, node_id: str, *, poll: float = 1.0) -> None:
        self._dsn = dsn
        self._node_id = node_id
        self.poll = poll
        self.epoch: int | None = None  # while leading: this leadership's fencing epoch
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._limiter = trio.CapacityLimiter(1)  # one statement at a time on the lock's connection

    @property
    def backend_pid(self) -> int | None:
        return None if self._conn is None else self._conn.info.backend_pid

    async def _run(self, query: str, params: dict[str, object] | None = None) -> tuple[object, ...] | None:
        conn = self._conn
        assert conn is not None

        def run() -> tuple[object, ...] | None:
            cur = conn.execute(query, params)
            return cur.fetchone() if cur.description is not None else None

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def acquire(self) -> int:
        """Wait until this node leads: its epoch."""
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await connect(self._dsn)
                    await self._run(_SCHEMA)
                row = await self._run("SELECT pg_try_advisory_lock(%(key)s)", {"key": LEADER_LOCK})
                if row is not None and row[0] is True:
                    bumped = await self._run(_BUMP, {"node": self._node_id})
                    assert bumped is not None and isinstance(bumped[0], int)
                    self.epoch = bumped[0]
                    log_event(log, "cluster_leader", node_id=self._node_id, epoch=self.epoch)
                    return self.epoch
            except psycopg.Error as exc:
                log_event(log, "cluster_leader_lock_error", error=str(exc).strip().splitlines()[0] if str(exc) else "")
                await self._drop()
            await trio.sleep(self.poll)

    async def hold(self) -> None:
        """Return when leadership is lost: the lock's connection failed its check."""
        while True:
            await trio.sleep(self.poll)
            try:
                row = await self._run("SELECT 1")
                if row is None:
                    raise psycopg.OperationalError("no answer")
            except psycopg.Error as exc:
                log_event(log, "cluster_leader_lost", node_id=self._node_id, epoch=self.epoch, error=str(exc)[:200])
                self.epoch = None
                await self._drop()
                return

    async def release(self) -> None:
        """Stop leading: closing the connection frees the lock (and nothing else lives on it)."""
        self.epoch = None
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        await close(conn)
