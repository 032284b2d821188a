"""LocalBus: one process is the whole cluster, which is what Fleetgate runs on today.

A message is queued by the store's after-commit hook (so a rolled-back write queues nothing) and
handled by whichever task next calls `caught_up()`: the notifier itself, right after its write, so
delivery runs in the operator's request as the direct calls it replaced did, and needs no service
running. Leadership is always held.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import trio

from ..store.tx import StoreTx
from .bus import Handler
from .messages import ControlMessage


@dataclass(slots=True, eq=False)
class _Delivery:
    message: ControlMessage
    started: bool = False
    done: trio.Event = field(default_factory=trio.Event)


class LocalBus:
    def __init__(self, handler: Handler) -> None:
        self._handle = handler
        self._open: list[_Delivery] = []  # committed, not yet handled, in commit order

    def notify(self, tx: StoreTx, message: ControlMessage) -> None:
        tx.after_commit(lambda: self._open.append(_Delivery(message)))

    async def caught_up(self) -> None:
        # Only what committed before this call: a steady stream of later messages cannot hold it up.
        due = list(self._open)
        for delivery in due:
            if not delivery.started:  # another caller may be handling it already: then wait below
                delivery.started = True
                try:
                    await self._handle(delivery.message)
                finally:
                    self._open.remove(delivery)
                    delivery.done.set()
        for delivery in due:
            await delivery.done.wait()

    def leadership(self) -> AbstractAsyncContextManager[None]:
        return _always_leading()

    def fence(self, tx: StoreTx) -> None:
        pass  # the only node always leads

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()  # nothing to listen to: delivery runs in caught_up

    def unready(self) -> list[str]:
        return []  # no connection of its own to lose: the store's probe covers the database


@asynccontextmanager
async def _always_leading() -> AsyncIterator[None]:
    yield  # the only node leads, from start-up to shutdown
