"""The embedded default store: SQLite in the data directory, one module per domain."""

from .engine import SQLiteStore

__all__ = ["SQLiteStore"]
