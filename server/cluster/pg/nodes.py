"""Node liveness: each node stamps its row in `cluster_nodes` every `beat` seconds; the leader
sweeps nodes whose stamp is older than `stale_after` (killed, cut off, frozen): their devices'
sessions are released in the store (they show offline unless another node holds them) and their
row goes. A node that finds its own row gone was swept while it could not stamp: the sessions it
still serves are no longer recorded, so it closes them and they reconnect (`swept`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import psycopg
import trio

from ...logs import log_event
from .connect import close, connect

log = logging.getLogger("fleetgate.cluster")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_nodes (
    node_id text COLLATE "C" PRIMARY KEY,
    started_at double precision NOT NULL,
    heartbeat_at double precision NOT NULL
)"""


_REGISTER = """
INSERT INTO cluster_nodes VALUES (%(n)s, extract(epoch FROM now()), extract(epoch FROM now()))
ON CONFLICT (node_id) DO UPDATE SET started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at"""

_STAMP = "UPDATE cluster_nodes SET heartbeat_at = extract(epoch FROM now()) WHERE node_id = %(n)s"


class NodeLiveness:
    def __init__(self, dsn: str, node_id: str, *, beat: float = 1.0, stale_after: float = 10.0) -> None:
        self._dsn = dsn
        self.node_id = node_id
        self.beat = beat
        self.stale_after = stale_after
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._limiter = trio.CapacityLimiter(1)
        self.stamped_at: float | None = None  # trio time of this node's last stamp (or registration)
        self.failing = False  # the last stamp could not reach the database

    async def _run(self, query: str, params: dict[str, object]) -> list[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(self._dsn)
        conn = self._conn

        def run() -> list[tuple[object, ...]]:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description is not None else [(cur.rowcount,)]

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    def current(self) -> bool:
        """This node's row was stamped lately: well within the time after which the leader sweeps it."""
        return self.stamped_at is not None and trio.current_time() - self.stamped_at <= self.stale_after / 2

    async def stamp(
        self, swept: Callable[[], None], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Stamp this node's row until cancelled (started after the first try); `swept()` when the
        row was found gone."""
        registered = False
        try:
            while True:
                try:
                    if not registered:
                        await self._run(_SCHEMA, {})
                        await self._run(_REGISTER, {"n": self.node_id})
                        registered = True
                        self.stamped_at, self.failing = trio.current_time(), False
                    else:
                        ((updated,),) = await self._run(_STAMP, {"n": self.node_id})
                        if updated == 0:  # swept while it could not stamp: its sessions are not recorded
                            log_event(log, "cluster_node_was_swept", node_id=self.node_id)
                            self.stamped_at = None
                            swept()
                            registered = False
                            continue
                        self.stamped_at, self.failing = trio.current_time(), False
                except psycopg.Error:
                    self.failing = True  # readiness and the device acceptor read it
                    await self._drop()  # the listener reports the database lost; stamping resumes with it
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                await trio.sleep(self.beat)
        finally:
            await self._drop()

    async def sweep(self, release: Callable[[str], Awaitable[None]]) -> None:
        """On the leader, until cancelled: release the sessions of nodes gone stale, then forget them."""
        while True:
            await trio.sleep(self.beat)
            try:
                rows = await self._run(
                    "SELECT node_id FROM cluster_nodes WHERE node_id <> %(n)s"
                    " AND heartbeat_at < extract(epoch FROM now()) - %(stale)s",
                    {"n": self.node_id, "stale": self.stale_after},
                )
                for (node_id,) in rows:
                    assert isinstance(node_id, str)
                    await release(node_id)
                    await self._run("DELETE FROM cluster_nodes WHERE node_id = %(n)s", {"n": node_id})
                    log_event(log, "cluster_node_swept", node_id=node_id)
            except psycopg.Error:
                await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        await close(conn)
