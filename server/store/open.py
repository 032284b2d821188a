"""Which store a server opens: SQLite in the data directory (the default, nothing to set up), or
the PostgreSQL database a `postgresql://` URL names (`fleetgate serve --database`)."""

from __future__ import annotations

from pathlib import Path

from .base import Store
from .database import check_database_url
from .secrets_key import SecretsKey


def open_store(database_url: str | None, db_path: Path, secrets_key: SecretsKey) -> Store:
    """The store the configuration names. DatabaseUnavailable where PostgreSQL cannot be reached."""
    if database_url is None:
        from .sqlite import SQLiteStore

        return SQLiteStore(db_path, secrets_key)
    check_database_url(database_url)
    from .postgres import PostgresStore  # psycopg is loaded only by servers that use it

    return PostgresStore(database_url, secrets_key)
