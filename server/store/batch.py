"""How a write batch applies its ops inside the transaction an engine has begun: the one loop both
engines run (store/sqlite/, store/postgres/), between their own BEGIN and COMMIT.

Consecutive ops of one groupable class go to `apply_group` together (one statement for many rows);
where that raises, the group is undone and its ops are applied one by one. Each op alone runs in a
savepoint of its own, so that an op that raises is rolled back alone, its after-commit hooks with it,
and its exception is its result: one bad op never sinks the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .sql import SqlConnection
from .tx import StoreTx
from .writeop import WriteOp


class BatchApplier(StoreTx):
    """A mixin of the engines: `StoreTx` with the batch loop over the writer connection `_w`."""

    _w: SqlConnection

    def _apply_ops(self, ops: Sequence[WriteOp[Any]]) -> list[object]:
        """Each op's result, or the Exception it raised, in order."""
        w = self._w
        results: list[object] = []
        start, count = 0, len(ops)
        while start < count:
            kind = type(ops[start])
            end = start + 1
            if kind.groupable:
                while end < count and type(ops[end]) is kind:
                    end += 1
            if end - start > 1 and self._apply_group(kind, ops[start:end], results):
                start = end
                continue
            for op in ops[start:end]:
                self._savepoint("op")
                mark = self._hooks_mark()
                try:
                    results.append(op.apply(self))
                except Exception as exc:  # one bad op must not sink the batch: report it to its owner
                    w.execute("ROLLBACK TO SAVEPOINT op")
                    self._hooks_undo(mark)
                    results.append(exc)
                self._release("op")
            start = end
        return results

    def _savepoint(self, name: str) -> None:
        """Open the savepoint an op (or a group) runs in. An engine may send it together with
        statements it held back (the PostgreSQL store: the batch's BEGIN, the last op's release)."""
        self._w.execute(f"SAVEPOINT {name}")

    def _release(self, name: str) -> None:
        """Close it. An engine may hold this back for its next round trip: nothing runs in between
        but the next `_savepoint` or the COMMIT, which releases every savepoint."""
        self._w.execute(f"RELEASE SAVEPOINT {name}")

    def _apply_group(self, kind: type[WriteOp[Any]], group: Sequence[WriteOp[Any]], results: list[object]) -> bool:
        """Apply a run of groupable ops at once; False (and nothing applied) where that fails, and the
        caller applies them one by one so that only the op at fault fails."""
        w = self._w
        self._savepoint("ops")
        mark = self._hooks_mark()
        try:
            done = kind.apply_group(self, group)
            assert len(done) == len(group)
        except Exception:
            w.execute("ROLLBACK TO SAVEPOINT ops")
            self._hooks_undo(mark)
            self._release("ops")
            return False
        self._release("ops")
        results.extend(done)
        return True
