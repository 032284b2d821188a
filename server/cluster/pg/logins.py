"""Failed-login limits the nodes of a cluster share (login_limits.py has one node's, in memory):
per (username, client IP) and per client IP, counted in PostgreSQL so that three nodes allow what
one does, not three times the attempts.

One row per key and fixed window (`login_failures`, upserted); the limit is checked against a
sliding estimate, the current window's count plus the previous window's weighted by how much of
it still overlaps the last `window` seconds. Attempts run one at a time cluster-wide (a transaction
advisory lock: logins are rare, and each costs tens of milliseconds of password hashing anyway),
so concurrent guesses on several nodes cannot slip past the limit together. The database's clock
is the one every node reads. Keys are SHA-256 digests: a username is whatever a client sends.

If the database cannot be reached, this node's in-memory limits answer meanwhile (a login then
fails anyway, at the store's read), and the shared ones resume with the next attempt.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from typing import TypeVar

import psycopg
import trio

from ...login_limits import LoginLimiter
from ...logs import log_event
from .connect import close, connect

log = logging.getLogger("fleetgate.cluster")
T = TypeVar("T")

LOGIN_LOCK = 0x466C6733_0002  # the advisory lock key of login attempts ("Flg3", 2)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS login_failures (
    key text COLLATE "C" NOT NULL,
    window_index bigint NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (key, window_index)
)"""

_COUNT = """
INSERT INTO login_failures VALUES (%(key)s, %(w)s, 1)
ON CONFLICT (key, window_index) DO UPDATE SET count = login_failures.count + 1"""


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class PgLoginLimits:
    def __init__(self, dsn: str, *, per_user: int = 10, per_ip: int = 100, window: float = 60.0) -> None:
        self._dsn = dsn
        self.per_user = per_user
        self.per_ip = per_ip
        self.window = window
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._local = LoginLimiter(per_user=per_user, per_ip=per_ip, window=window)  # while the database is away
        self._failing = False

    def _keys(self, username: str, ip: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return (_key("user", ip, username.lower()), self.per_user), (_key("ip", ip), self.per_ip)

    async def attempt(self, username: str, ip: str) -> float | None:
        keys = self._keys(username, ip)

        def run(conn: psycopg.Connection[tuple[object, ...]]) -> float | None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOGIN_LOCK,))
                row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
                assert row is not None and isinstance(row[0], float)
                now = row[0]
                index = math.floor(now / self.window)
                overlap = 1.0 - (now - index * self.window) / self.window  # of the previous window
                counts = dict.fromkeys([(k, i) for k, _ in keys for i in (index - 1, index)], 0)
                for key, w, n in conn.execute(
                    "SELECT key, window_index, count FROM login_failures WHERE key = ANY(%s) AND window_index >= %s",
                    ([k for k, _ in keys], index - 1),
                ):
                    assert isinstance(key, str) and isinstance(w, int) and isinstance(n, int)
                    counts[(key, w)] = n
                for key, limit in keys:
                    if counts[(key, index)] + counts[(key, index - 1)] * overlap >= limit:
                        return max(1.0, (index + 1) * self.window - now)  # when this window ends
                for key, _ in keys:
                    conn.execute(_COUNT, {"key": key, "w": index})
                conn.execute("DELETE FROM login_failures WHERE window_index < %s", (index - 1,))
                return None

        return await self._run(run, lambda: self._local.attempt_now(username, ip))

    async def succeeded(self, username: str, ip: str) -> None:
        (user_key, _), (ip_key, _) = self._keys(username, ip)

        def run(conn: psycopg.Connection[tuple[object, ...]]) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOGIN_LOCK,))
                conn.execute("DELETE FROM login_failures WHERE key = %s", (user_key,))
                conn.execute(
                    "UPDATE login_failures SET count = count - 1 WHERE key = %s AND count > 0 AND window_index ="
                    " (SELECT max(window_index) FROM login_failures WHERE key = %s)",
                    (ip_key, ip_key),
                )

        await self._run(run, lambda: self._local.succeeded_now(username, ip))

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        await close(conn)

    async def _run(self, fn: Callable[[psycopg.Connection[tuple[object, ...]]], T], meanwhile: Callable[[], T]) -> T:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await connect(self._dsn)
                await trio.to_thread.run_sync(self._conn.execute, _SCHEMA, limiter=self._limiter)
            conn = self._conn
            result = await trio.to_thread.run_sync(fn, conn, limiter=self._limiter)
        except psycopg.Error as exc:
            if not self._failing:
                log_event(log, "login_limits_local", logging.WARNING, error=str(exc).strip().splitlines()[0][:200])
            self._failing = True
            broken, self._conn = self._conn, None
            await close(broken)
            return meanwhile()
        self._failing = False
        return result
