"""Storage behind an interface: `Store` (sync, one engine per implementation), its write side
(`StoreTx`, `WriteOp`, `Transaction`), and `AsyncStore`, which keeps it off the event loop."""

from .base import Store
from .records import DeviceRecord, EventRecord, ImportResult, ProductRecord
from .runner import AsyncStore, StoreClosed
from .sqlite import SQLiteStore
from .tx import StoreTx
from .writeop import Transaction, WriteOp

__all__ = [
    "AsyncStore",
    "DeviceRecord",
    "EventRecord",
    "ImportResult",
    "ProductRecord",
    "SQLiteStore",
    "Store",
    "StoreClosed",
    "StoreTx",
    "Transaction",
    "WriteOp",
]
