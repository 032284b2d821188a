"""A bench run on PostgreSQL (`--server-database URL`): a database of its own beside the one the
URL names, dropped afterwards, and the CPU of the PostgreSQL backends serving it, which is part
of what the server costs (counted with the server's own)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg

from .machine import cpu_seconds


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


@contextlib.contextmanager
def bench_database(url: str) -> Iterator[str]:
    """A fresh database for one run (the URL's user must be allowed to create databases): its URL."""
    name = f"fleetsim_bench_{os.getpid()}"
    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(url, name)
    finally:
        with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class BackendMeter:
    """CPU seconds of the backends connected to one database (the server's writer and readers).
    A backend that has ended no longer counts: the server keeps its connections for its life."""

    def __init__(self, url: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True)
        self._me = self._conn.info.backend_pid

    def cpu(self) -> float:
        pids = [
            int(pid)
            for (pid,) in self._conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s", (self._me,)
            )
        ]
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):  # ended meanwhile
                total += cpu_seconds(pid)
        return total

    def stored_events(self) -> int:
        (count,) = self._conn.execute("SELECT COUNT(*) FROM events").fetchone() or (0,)
        return int(count)

    def close(self) -> None:
        self._conn.close()
