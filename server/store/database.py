"""A database URL (`--database`): which ones we open, how to name one in a message, and the
error of one that cannot be reached. Apart from open.py, which imports the stores."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

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
