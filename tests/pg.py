"""PostgreSQL for the tests: each xdist worker's own database, migrated once, emptied per test.

FLEETGATE_TEST_DATABASE_URL names a database whose user may create databases (the CI's:
postgresql:///fleetgate_test, peer auth as root); each worker's is that name + _gw0, _gw1...
Unset, the PostgreSQL tests skip with the reason
on a developer's machine; under CI (CI=true) unset or unreachable fails them instead.
FLEETGATE_TEST_STORE=postgres runs the API and end-to-end suites on PostgreSQL too (`current_url`).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psycopg
import pytest

from server.store import Store

ENV = "FLEETGATE_TEST_DATABASE_URL"
_ready: dict[str, str] = {}  # worker -> its database's URL, once created and migrated
_current: list[str] = []
_opened: list[Store] = []  # the URL of the database the running test uses (FLEETGATE_TEST_STORE=postgres)


def on_postgres() -> bool:
    """This run is the PostgreSQL pass of the API and end-to-end suites."""
    return os.environ.get("FLEETGATE_TEST_STORE", "sqlite") == "postgres"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)  # (urlunsplit would drop the empty host of postgresql:///db)
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


def worker_database() -> str:
    """This worker's database URL: created (afresh) and migrated on first use in the session."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if worker in _ready:
        return _ready[worker]
    base = os.environ.get(ENV)
    if not base:
        _unavailable(f"set {ENV} (e.g. postgresql:///fleetgate_test; docs/CLUSTER.md) to run them")
    assert base is not None
    parts = urlsplit(base)
    name = f"{parts.path.lstrip('/') or 'fleetgate_test'}_{worker}"
    url = _with_database(base, name)
    try:
        maintenance = _with_database(base, "postgres")  # the base database need not exist
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a previous session's
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        _unavailable(f"{ENV} is set but PostgreSQL refused: {str(exc).strip().splitlines()[-1]}")
    from server.store.postgres.engine import PostgresStore
    from server.store.secrets_key import SecretsKey

    PostgresStore(url, SecretsKey(key=bytes(32))).close()  # migrates once; emptied before each use
    _ready[worker] = url
    return url


def empty_database() -> str:
    """This worker's database with every table emptied and every ID sequence restarted: its URL."""
    url = worker_database()
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename NOT IN ('schema_migrations', 'webhook_dispatch', 'admission_epoch', 'event_index_mark')"
            )
        ]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        conn.execute("UPDATE webhook_dispatch SET cursor = 0")  # its one row is the migration's
        conn.execute("UPDATE event_index_mark SET upto = 0")  # so is this one's
    return url


def opened(store: Store) -> Store:
    """A store a test opened on the PostgreSQL pass: closed when the test ends (its connections
    would otherwise be garbage-collected open, which psycopg warns about)."""
    _opened.append(store)
    return store


def close_opened() -> None:
    while _opened:
        _opened.pop().close()


def current_url() -> str | None:
    """Under FLEETGATE_TEST_STORE=postgres, the database of the running test (the API and e2e
    harnesses pass it as ServerConfig.database_url); None on the SQLite pass."""
    return _current[-1] if _current else None


def begin_test() -> None:
    _current.clear()
    if on_postgres():
        _current.append(empty_database())
