"""Storage behind an interface: `Store` (sync, one engine per implementation) and `AsyncStore`."""

from .base import DeviceRecord, EventRecord, ImportResult, ProductRecord, Store
from .runner import AsyncStore, StoreClosed
from .sqlite import SQLiteStore

__all__ = [
    "AsyncStore",
    "DeviceRecord",
    "EventRecord",
    "ImportResult",
    "ProductRecord",
    "SQLiteStore",
    "Store",
    "StoreClosed",
]
