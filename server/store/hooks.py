"""Work a write op asks for once its transaction has committed (`Store.after_commit`).

The cluster bus's "delivered if and only if the transaction commits" rests on this: a callback
registered inside an op that then fails (its savepoint rolls back) or in a batch that does not
commit is dropped; the others are handed to the writer service, which runs them on the event loop
right after the commit and before the ops' own completions (so a caller that resumes after its
write already finds them run).
"""

from __future__ import annotations

from collections.abc import Callable

AfterCommit = Callable[[], None]


class CommitHooks:
    """Mixed into Store: the bookkeeping; a store's write_batch marks, undoes and commits it."""

    _hooks: list[AfterCommit] | None = None  # the batch being applied (None outside one)
    _committed: list[AfterCommit] | None = None  # committed, not yet taken by the writer service

    def after_commit(self, fn: AfterCommit) -> None:
        """Inside a write op: run `fn` on the event loop once this transaction has committed;
        never if the op fails or the transaction rolls back."""
        if self._hooks is None:
            raise RuntimeError("after_commit outside a write batch")
        self._hooks.append(fn)

    def take_committed_hooks(self) -> list[AfterCommit]:
        """The writer service, after a batch: what committed batches asked for, in order (once)."""
        committed, self._committed = self._committed, None
        return committed or []

    # -- for write_batch implementations
    def _hooks_begin(self) -> None:
        self._hooks = []

    def _hooks_mark(self) -> int:
        return len(self._hooks) if self._hooks else 0

    def _hooks_undo(self, mark: int) -> None:
        """The op (or group) applied since `mark` rolled back: so do its hooks."""
        if self._hooks:
            del self._hooks[mark:]

    def _hooks_end(self, committed: bool) -> None:
        hooks, self._hooks = self._hooks, None
        if committed and hooks:
            self._committed = (self._committed or []) + hooks
