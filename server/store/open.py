"""Which store a server opens: SQLite in the data directory (the default, nothing to set up), or
the PostgreSQL database a `postgresql://` URL names (`fleetgate serve --database`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import Store
from .secrets_key import SecretsKey

URL_SCHEMES = ("postgresql://", "postgres://")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused us: one line for the operator."""


def check_database_url(url: str) -> None:
    """ValueError naming the problem if `url` is not one we can open."""
    if not url.startswith(URL_SCHEMES):
        raise ValueError(f"--database takes a postgresql:// URL, not {url.split(':', 1)[0]!r}")


def describe_database(url: str) -> str:
    """Where a database URL points, without its user or password: for messages and logs."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "the PostgreSQL database of an unreadable URL"
    name = unquote(parts.path.lstrip("/")) or "(the user's default)"
    return f"PostgreSQL database {name} on {host or 'the local socket'}{f':{port}' if port else ''}"


def open_store(database_url: str | None, db_path: Path, secrets_key: SecretsKey) -> Store:
    """The store the configuration names. DatabaseUnavailable where PostgreSQL cannot be reached."""
    if database_url is None:
        from .sqlite import SQLiteStore

        return SQLiteStore(db_path, secrets_key)
    check_database_url(database_url)
    from .postgres import PostgresStore  # psycopg is loaded only by servers that use it

    return PostgresStore(database_url, secrets_key)
