"""Write operations: what the writer service applies inside its transaction, typed by their result.

`AsyncStore.write(op)` returns what `op.apply` returned (mypy sees the `T`); `AsyncStore.submit(op,
on_done)` hands `on_done` that result, or the exception the op raised (the op alone rolled back).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from .tx import StoreTx

T = TypeVar("T")


class WriteOp(abc.ABC, Generic[T]):
    """One write, applied inside the writer's transaction; returns its result (or raises)."""

    __slots__ = ()

    # True: `write_batch` may hand a run of consecutive ops of this class to `apply_group` at
    # once (one statement for many rows) instead of applying them one by one.
    groupable: ClassVar[bool] = False
    # True: a few index lookups and row writes at most, so that a small batch of such ops may be
    # applied on the event loop itself (`Store.write_batch_now`).
    small: ClassVar[bool] = False

    @abc.abstractmethod
    def apply(self, tx: StoreTx) -> T: ...

    @classmethod
    def apply_group(cls, tx: StoreTx, ops: Sequence[WriteOp[T]]) -> list[T]:
        """Apply ops of this class together: each op's result, in order. All or nothing: where
        it raises, the store undoes the group and applies the ops one by one, so that only the
        op at fault fails."""
        return [op.apply(tx) for op in ops]


@dataclass(frozen=True, slots=True)
class Transaction(WriteOp[T]):
    """An operator's change: any function of the transaction, run inside the writer's transaction."""

    fn: Callable[[StoreTx], T]
    label: str = "transaction"

    def apply(self, tx: StoreTx) -> T:
        return self.fn(tx)
