"""Store.after_commit: what an op asks for runs once its transaction commits, never when it rolls back."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from server.events.log import AppendEvent
from server.store import Store, Transaction, WriteOp
from server.store.records import EventRecord
from server.store.tx import StoreTx
from tests.server.store.conftest import OpenStore

DEVICE = "aa" * 12


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


def asking(ran: list[str], name: str, *, fail: bool = False) -> Transaction[None]:
    def fn(s: StoreTx) -> None:
        s.after_commit(lambda: ran.append(name))
        if fail:
            raise RuntimeError(name)

    return Transaction(fn, name)


def run_taken(store: Store) -> None:
    for hook in store.take_committed_hooks():
        hook()


def test_a_committed_op_hook_runs_once_and_a_failed_op_hook_never(store: Store) -> None:
    ran: list[str] = []
    results = store.write_batch([asking(ran, "a"), asking(ran, "b", fail=True), asking(ran, "c")])
    assert results[0] is None and isinstance(results[1], RuntimeError) and results[2] is None
    assert ran == []  # not before the writer service takes them, after the commit
    run_taken(store)
    assert ran == ["a", "c"]
    run_taken(store)
    assert ran == ["a", "c"]  # taken once


class Interrupted(BaseException):
    """Not an op's error: the whole batch is rolled back."""


class Abort(WriteOp[None]):
    def apply(self, store: StoreTx) -> None:
        raise Interrupted


def test_a_batch_that_does_not_commit_runs_no_hook(store: Store) -> None:
    ran: list[str] = []
    with pytest.raises(Interrupted):
        store.write_batch([asking(ran, "a"), Abort()])
    run_taken(store)
    assert ran == []
    store.write_batch([asking(ran, "next")])  # the next batch starts clean
    run_taken(store)
    assert ran == ["next"]


class AppendAsking(AppendEvent):
    """A groupable op that asks for a hook: a group that fails is undone, hooks included, and applied one by one."""

    ran: list[str] = []

    def apply(self, store: StoreTx) -> int:
        store.after_commit(lambda: self.ran.append(self.event.name))
        return super().apply(store)

    @classmethod
    def apply_group(cls, store: StoreTx, ops: Sequence[WriteOp[int]]) -> list[int]:
        return [op.apply(store) for op in ops]


def test_a_group_rolled_back_drops_its_hooks_and_the_ops_that_commit_keep_theirs(store: Store) -> None:
    AppendAsking.ran = []
    good = AppendAsking(EventRecord(DEVICE, "good", b"", 60, True, 1.0))
    bad = AppendAsking(EventRecord(DEVICE, None, b"", 60, True, 1.0))  # type: ignore[arg-type]  # NOT NULL
    results = store.write_batch([good, bad])
    assert isinstance(results[0], int) and isinstance(results[1], Exception)
    run_taken(store)
    assert AppendAsking.ran == ["good"]  # once: the group's try was undone with its hooks
