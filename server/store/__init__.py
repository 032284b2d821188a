"""Storage behind an interface: `Store` (sync, one engine per implementation) and `AsyncStore`."""

from .base import DeviceRecord, EventRecord, ImportResult, Store
from .runner import AsyncStore, StoreClosed
from .sqlite import SQLiteStore

__all__ = ["AsyncStore", "DeviceRecord", "EventRecord", "ImportResult", "SQLiteStore", "Store", "StoreClosed"]
