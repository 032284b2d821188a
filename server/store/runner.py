"""Keeps blocking storage calls off the event loop.

Reads run in worker threads through a limiter (one at a time on the reader connection).
Writes go through one writer task: callers submit operations to a bounded channel and the
writer applies whatever has queued up in one transaction, so a burst of publishes costs one
commit instead of hundreds. A full channel makes submitters wait (backpressure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import trio

from .base import Store
from .writeop import Transaction, WriteOp

log = logging.getLogger("fleetgate.store")

P = ParamSpec("P")
T = TypeVar("T")

WRITE_QUEUE = 4096  # pending write operations before submitters wait
MAX_BATCH = 512  # operations per transaction
# Fewer than this queued: the writer lets the event loop run once more (one scheduler tick:
# sessions with data read it and submit) before it takes the batch, so a commit and the acks
# behind it cover more events.
GATHER_BELOW = 64
# A batch of at most this many small ops (WriteOp.small) is applied on the event loop itself
# (Store.write_batch_now, under a millisecond): handing it to a worker thread and back costs
# more CPU than the commit (~150 us per hop, measured on the benchmark machine, against
# ~80 us for a commit of one event and ~8 us for each further one).
INLINE_OPS = 32


class StoreClosed(Exception):
    """The writer has stopped (the server is shutting down); the write was not queued."""


@dataclass(slots=True)
class _Pending:
    op: WriteOp[Any]
    on_done: Callable[[Any], None] | None  # given the op's result or Exception (submit's types)


class AsyncStore:
    """`inline=True` runs storage calls on the event loop itself: only for tests on
    trio.testing.MockClock, whose autojump would otherwise fire timeouts while a worker
    thread is busy. Production always uses threads."""

    def __init__(self, store: Store, *, inline: bool = False) -> None:
        self.sync = store
        self.inline = inline
        self._read_limiter = trio.CapacityLimiter(store.read_threads)
        self._send, self._receive = trio.open_memory_channel[_Pending](WRITE_QUEUE)
        self.batches = 0
        self.batches_on_loop = 0  # of which applied on the event loop (write_batch_now)
        self.ops = 0

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read method of the sync store in a worker thread."""
        if self.inline:
            await trio.lowlevel.checkpoint()
            return fn(*args, **kwargs)
        return await trio.to_thread.run_sync(
            lambda: self.sync.reading(lambda: fn(*args, **kwargs)), limiter=self._read_limiter
        )

    async def read_now(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a small indexed read on the event loop itself. For the handshake's hot path only:
        a handful of primary-key lookups take tens of microseconds, while a hop to a worker
        thread and back costs about 70 µs of CPU and a context switch (profiled under a
        reconnect storm). SQLite in WAL mode never makes a reader wait for the writer. A store
        whose reads cross the network (`Store.reads_on_loop` False) runs it in a worker thread."""
        if not self.sync.reads_on_loop:
            return await self.read(fn, *args, **kwargs)
        await trio.lowlevel.checkpoint()
        return self.sync.read_on_loop(lambda: fn(*args, **kwargs))

    async def _apply(self, ops: list[WriteOp[Any]]) -> list[object]:
        if self.inline:
            await trio.lowlevel.checkpoint()
            return self.sync.write_batch(ops)
        if len(ops) <= INLINE_OPS and all(op.small for op in ops):
            results = self.sync.write_batch_now(ops)
            if results is not None:
                self.batches_on_loop += 1
                return results
        return await trio.to_thread.run_sync(self.sync.write_batch, ops)

    async def submit(self, op: WriteOp[T], on_done: Callable[[T | Exception], None] | None = None) -> None:
        """Queue a write. `on_done(result_or_exception)` runs on the event loop after commit."""
        try:
            await self._send.send(_Pending(op, on_done))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed("the store writer has stopped") from None

    def try_submit(self, op: WriteOp[T], on_done: Callable[[T | Exception], None] | None = None) -> bool:
        """`submit` without waiting or yielding: False if the queue is full (then `submit`). A
        session queues a whole read's publishes this way with no scheduler round trip each."""
        try:
            self._send.send_nowait(_Pending(op, on_done))
        except trio.WouldBlock:
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosed("the store writer has stopped") from None
        return True

    async def write(self, op: WriteOp[T]) -> T:
        """Queue a write and wait for its commit: its result; re-raises the op's exception."""
        done = trio.Event()
        box: list[T | Exception] = []

        def finish(result: T | Exception) -> None:
            box.append(result)
            done.set()

        await self.submit(op, finish)
        await done.wait()
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    async def flush(self) -> None:
        """Wait until every write queued before this call is committed (the queue is FIFO)."""
        await self.write(Transaction(lambda tx: None, "flush"))

    async def run_writer(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer service. Runs until `close_writes()`, applying everything queued before it."""
        task_status.started()
        async with self._receive:
            while True:
                try:
                    batch = [await self._receive.receive()]
                except trio.EndOfChannel:
                    return
                if self._receive.statistics().current_buffer_used < GATHER_BELOW:
                    await trio.lowlevel.cancel_shielded_checkpoint()  # what was received stays received
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                # Shielded: a batch handed to the database is committed and reported even while
                # the server is being cancelled, so nobody waits for an ack that never comes.
                with trio.CancelScope(shield=True):
                    results = await self._apply([p.op for p in batch])
                self.batches += 1
                self.ops += len(batch)
                # What the committed ops asked for (Store.after_commit) runs before they are reported.
                for hook in self.sync.take_committed_hooks():
                    try:
                        hook()
                    except Exception:
                        log.exception("after-commit hook failed")
                for pending, result in zip(batch, results, strict=True):
                    if isinstance(result, BaseException):
                        log.error("store write failed: %r: %s", pending.op, result)
                    if pending.on_done is not None:
                        try:
                            pending.on_done(result)
                        except Exception:  # a caller's bug must not stop every other write
                            log.exception("store write callback failed for %r", pending.op)

    async def close_writes(self) -> None:
        """No more writes: the writer applies what is queued, then `run_writer` returns."""
        await self._send.aclose()
