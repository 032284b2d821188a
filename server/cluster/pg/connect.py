"""Connections the cluster bus holds for itself: autocommit, with TCP keepalives so that a
PostgreSQL host that vanished (not just a closed socket) is noticed within seconds. They are
direct connections: LISTEN and session advisory locks do not survive a transaction-mode pooler."""

from __future__ import annotations

import psycopg
import trio

CONNECT_TIMEOUT = 5  # seconds


def connect_sync(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    # Keepalives: a host gone silent is noticed after about 5 + 3 * 2 seconds.
    return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                           keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3)  # fmt: skip


async def connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection opened in a worker thread (psycopg's async API runs on asyncio only)."""
    return await trio.to_thread.run_sync(connect_sync, dsn)


async def close(conn: psycopg.Connection[tuple[object, ...]] | None) -> None:
    if conn is not None:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(conn.close)
