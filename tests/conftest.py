from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.store import Store
from server.store.secrets_key import SecretsKey

from .pg import begin_test, close_opened, current_url, empty_database, opened


@pytest.fixture(autouse=True)
def _capture_fleetgate_info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Sessions log their close reasons at INFO; tests read those records."""
    caplog.set_level(logging.INFO, logger="fleetgate")


@pytest.fixture(autouse=True)
def _postgres_pass(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """FLEETGATE_TEST_STORE=postgres: every test starts with this worker's PostgreSQL database empty,
    and every server it starts that names no database uses it: in this process (`start_up`), and
    in `fleetgate serve` subprocesses (FLEETGATE_DATABASE_URL)."""
    begin_test()
    url = current_url()
    if url is None:
        yield
        return
    import server.app
    from server.store.open import open_store

    def on_postgres(database_url: str | None, db_path: Path, secrets_key: SecretsKey) -> Store:
        return opened(open_store(database_url or url, db_path, secrets_key))

    monkeypatch.setattr(server.app, "open_store", on_postgres)
    monkeypatch.setenv("FLEETGATE_DATABASE_URL", url)
    yield
    close_opened()


@pytest.fixture
def pg_dsn() -> str:
    """An empty, migrated PostgreSQL database of this worker (skips, or fails under CI, without one)."""
    return empty_database()
