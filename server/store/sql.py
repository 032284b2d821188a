"""What the per-domain query mixins (store/sqlite/*.py) need of a database connection, so that
the PostgreSQL store (store/postgres/) runs the same SQL through an adapter.

The SQL is written in SQLite's dialect with `?` placeholders; `postgres/connection.py` rewrites
the few constructs PostgreSQL spells differently. Where more than spelling differs (generated IDs,
`group_concat`, scalar `MAX`), the PostgreSQL store overrides the method instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol


class SqlCursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlConnection(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> SqlCursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> SqlCursor: ...
