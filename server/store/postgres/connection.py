"""psycopg connections behind the `SqlConnection` interface (store/sql.py) the query mixins use.

The mixins' SQL is SQLite's dialect; `translate` rewrites what PostgreSQL spells differently
(placeholders, NULL-safe `IS NOT`, ASCII case-insensitive `LIKE`, `INSERT OR IGNORE`), once per
statement text.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from ...rules.errors import Invalid
from ..sql import SqlCursor

T = TypeVar("T")

_NUL = "cannot contain NUL"  # psycopg's words, raised before anything is sent


def _refuse_nul(exc: psycopg.DataError) -> Exception:
    """SQLite stores text with NUL characters; PostgreSQL cannot: a bad value, not a server fault."""
    if _NUL in str(exc):
        return Invalid("text with a NUL character (U+0000) cannot be stored")
    return exc


_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|%|\bIS NOT \?|\bLIKE\b", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """SQLite-dialect SQL as PostgreSQL reads it. String literals are left as they are."""

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        upper = token.upper()
        if token.startswith("'"):
            return token.replace("%", "%%")  # psycopg reads % everywhere once parameters are given
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if upper.startswith("IS NOT"):
            return "IS DISTINCT FROM %s"  # SQLite's IS NOT compares NULLs as values
        return "ILIKE"  # SQLite's LIKE ignores ASCII case

    if re.search(r"\?\d", sql):
        raise ValueError("numbered placeholders are not translated: override the query for PostgreSQL")
    if sql.startswith("INSERT OR IGNORE INTO "):  # a row whose key exists is left as it is
        sql = "INSERT INTO " + sql.removeprefix("INSERT OR IGNORE INTO ") + " ON CONFLICT DO NOTHING"
    return _TOKENS.sub(one, sql)


class Rows:
    """A finished statement's rows, fetched whole (the connection went back to the pool)."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class PgConnection:
    """One connection (the writer's), in autocommit mode: `write_batch` says BEGIN and COMMIT."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Any = None, /) -> SqlCursor:
        # Parameters always given (even none), so that psycopg always reads the %% of translate.
        try:
            return self.raw.execute(translate(sql), parameters or ())  # our own SQL
        except psycopg.DataError as exc:
            raise _refuse_nul(exc) from None

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> SqlCursor:
        cur = self.raw.cursor()
        try:
            cur.executemany(translate(sql), parameters)
        except psycopg.DataError as exc:
            raise _refuse_nul(exc) from None
        return cur

    def close(self) -> None:
        self.raw.close()


class PooledReader:
    """Reads outside a write batch: each statement on whichever pooled connection is free, or, inside
    `pinned`, every statement of one read function on the connection it checked out (a checkout
    costs about as much CPU as a short statement)."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool
        self._local = threading.local()  # .conn: this thread's pinned connection, if any

    def pinned(self, fn: Callable[[], T]) -> T:
        if getattr(self._local, "conn", None) is not None:
            return fn()  # a read inside a read: its connection already
        with self.pool.connection() as conn:
            self._local.conn = conn
            try:
                return fn()
            finally:
                self._local.conn = None

    def execute(self, sql: str, parameters: Any = None, /) -> SqlCursor:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                cur = conn.execute(translate(sql), parameters or ())
                return Rows(cur.fetchall() if cur.description else [], cur.rowcount)
            except psycopg.DataError as exc:
                raise _refuse_nul(exc) from None
            except psycopg.OperationalError:
                if not conn.closed:
                    raise
                self._local.conn = None  # it had died idle in the pool: the rest as without a pin
        try:
            rows = self._once(sql, parameters)
            if rows is None:  # that connection had died idle in the pool (the database was away): once more
                rows = self._once(sql, parameters)
        except psycopg.DataError as exc:
            raise _refuse_nul(exc) from None
        if rows is None:
            raise psycopg.OperationalError("the database connection was lost")
        return rows

    def _once(self, sql: str, parameters: Any) -> Rows | None:
        """The statement's rows; None if the connection turned out closed (the pool replaces it)."""
        with self.pool.connection() as conn:
            try:
                cur = conn.execute(translate(sql), parameters or ())
            except psycopg.OperationalError:
                if conn.closed:
                    return None
                raise
            return Rows(cur.fetchall() if cur.description else [], cur.rowcount)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> SqlCursor:
        raise TypeError("the reader pool does not write")
