"""The storage engine's interface: the reads of every domain, and writes as batches of write ops.

Everything outside store/ holds a `Store`. It reads (`StoreReads`), and it writes only by handing
`WriteOp`s to `write_batch` (the writer service does, in `AsyncStore`): an op's `apply` is given
the `StoreTx`, the one type with write methods. Implementations are synchronous.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, TypeVar

from .hooks import CommitHooks
from .reads import StoreReads
from .records import ImportResult
from .tx import StoreTx
from .writeop import Transaction, WriteOp

T = TypeVar("T")


class Store(StoreReads, CommitHooks):
    # False: every read is a network round trip, so AsyncStore.read_now runs it in a worker
    # thread like any other read rather than block the event loop on it.
    reads_on_loop: ClassVar[bool] = True
    # Reads that may run at once (AsyncStore's reader threads): one per reader connection.
    read_threads: ClassVar[int] = 1

    def read_on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a small read on the calling (event loop) thread, on a connection of its own where
        the store has several (see AsyncStore.read_now)."""
        return fn(*args)

    def reading(self, fn: Callable[[], T]) -> T:
        """Run a read function in a worker thread (AsyncStore.read). A store with a pool of reader
        connections gives all of its statements one connection (one checkout instead of one each)."""
        return fn()

    # -- writes: every write is a WriteOp applied by write_batch, in the writer service
    @abc.abstractmethod
    def write_batch(self, ops: Sequence[WriteOp[Any]]) -> list[object]:
        """Apply ops in one transaction; each op's result, or the Exception it raised (that op
        alone is rolled back), in order."""

    def write_batch_now(self, ops: Sequence[WriteOp[Any]]) -> list[object] | None:
        """`write_batch` on the calling thread (the event loop), for a small batch of small ops,
        where that costs no wait: None, with nothing applied, where it would wait (another
        process holds the write lock) or do slow upkeep (a WAL checkpoint) first; the caller
        then runs `write_batch` in a worker thread. This default never applies on the loop."""
        return None

    def transact(self, fn: Callable[[StoreTx], T]) -> T:
        """Apply `fn` in a transaction of its own, outside the writer service (start-up, offline
        commands, tests); re-raises what it raised."""
        (result,) = self.write_batch([Transaction(fn, "transact")])
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[return-value]  # write_batch's results are the ops' own

    def import_devices(self, rows: Iterable[tuple[str, bytes]], now: float) -> ImportResult:
        """Register device keys in a transaction of its own (see StoreTx.add_device_keys)."""
        batch = list(rows)
        return self.transact(lambda tx: tx.add_device_keys(batch, now))

    @abc.abstractmethod
    def ping(self) -> None:
        """A trivial read on a reader connection: returns once the database answers (readiness)."""

    @abc.abstractmethod
    def reset_online(self) -> int:
        """Mark every device offline (at startup: no session survives a restart)."""

    @abc.abstractmethod
    def close(self) -> None: ...
