"""The LISTEN side of the cluster bus: one autocommit connection, read on the event loop when its
socket is readable (no thread held), reconnected when it fails.

Notifications are not durable: those sent while this node was not listening are gone. After every
(re)connect `resync` runs, which re-reads what the tables say (the caller decides what that is).
A node that cannot reach PostgreSQL for `give_up_after` seconds is told once (`unreachable`), so it
can close its devices and let them move to a node that can.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import psycopg
import trio
from psycopg import sql

from ...logs import log_event
from .connect import close, connect

log = logging.getLogger("fleetgate.cluster")

RETRY_AFTER = 0.5  # seconds between connection attempts


class Listener:
    def __init__(
        self,
        dsn: str,
        channels: Sequence[str],
        deliver: Callable[[str, str], None],
        resync: Callable[[], Awaitable[None]],
        unreachable: Callable[[], None],
        *,
        give_up_after: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._channels = tuple(channels)
        self._deliver = deliver  # (channel, payload), on the event loop, in the order they arrive
        self._resync = resync
        self._unreachable = unreachable
        self.give_up_after = give_up_after
        self.connects = 0  # how many times it has connected (a reconnect makes it more than 1)
        self.backend_pid: int | None = None  # the listening backend, for operators and tests
        self.listening = False  # LISTEN is in place and the resync after it ran
        self.failing = False  # the last attempt to connect or read failed (cleared on reconnect)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; started once LISTEN is in place and the first resync ran."""
        lost_at: float | None = None
        told = False
        while True:
            conn = None
            try:
                conn = await connect(self._dsn)
                for channel in self._channels:
                    await trio.to_thread.run_sync(conn.execute, sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                self.backend_pid = conn.info.backend_pid
                self.connects += 1
                if lost_at is not None:
                    log_event(log, "cluster_listener_reconnected", after=round(trio.current_time() - lost_at, 3))
                lost_at, told = None, False
                self.failing = False
                await self._resync()  # anything notified while not listening
                self.listening = True
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                await self._read(conn)
            except psycopg.Error as exc:
                self.failing = True
                now = trio.current_time()
                if lost_at is None:
                    lost_at = now
                    log_event(log, "cluster_listener_lost", error=str(exc).strip().splitlines()[0] if str(exc) else "")
                if not told and now - lost_at >= self.give_up_after:
                    told = True
                    self._unreachable()
            finally:
                self.listening = False
                await close(conn)
            await trio.sleep(RETRY_AFTER)

    async def _read(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        pg = conn.pgconn
        while True:
            await trio.lowlevel.wait_readable(pg.socket)
            pg.consume_input()
            if pg.status != psycopg.pq.ConnStatus.OK:
                raise psycopg.OperationalError("the listening connection was closed")
            while (n := pg.notifies()) is not None:
                self._deliver(n.relname.decode(), n.extra.decode())
