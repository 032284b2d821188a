"""The PostgreSQL store: the shared store of record for several nodes (see engine.py)."""

from ..database import DatabaseUnavailable
from .engine import PostgresStore

__all__ = ["DatabaseUnavailable", "PostgresStore"]
