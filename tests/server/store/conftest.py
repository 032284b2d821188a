"""The store tests run on both stores: SQLite in a temporary directory, and PostgreSQL (marked
`postgres`: this worker's database, emptied; see tests/pg.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.store import SQLiteStore, Store
from server.store.secrets_key import SecretsKey
from tests.pg import empty_database

OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens a store on the same database each time it is called (closed after the test)."""
    url = empty_database() if request.param == "postgres" else None
    opened: list[Store] = []

    def open_one() -> Store:
        store: Store
        if url is None:
            store = SQLiteStore(tmp_path / "fleetgate.db")
        else:
            from server.store.postgres import PostgresStore

            store = PostgresStore(url, SecretsKey.default_file(tmp_path / "secrets.key"))
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def integrity_error(store: Store) -> type[Exception]:
    """What the store's driver raises when a constraint fails."""
    error: type[Exception] = getattr(store, "_integrity_error")  # noqa: B009  # the mixins' class attribute
    return error
