"""ClusterBus: how a write on one node reaches the live state of every node, and who runs the singletons.

Contract, for every implementation:
- `notify(tx, message)` is called inside a write transaction (`tx` is the store as that transaction
  sees it). Every node's handler gets `message` once if the transaction commits, never if it rolls back.
- `caught_up()` returns once this node has handled every message committed before the call: the
  notifier awaits it after its write, so an operator's action answers after its own node acted.
- `leadership()` is held while this node runs the cluster's singletons (the rollout scheduler,
  webhook dispatch); leaving it (or losing it) stops them.
- `unready()` names what the bus knows keeps this node from serving (readiness, the device acceptor).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import trio

from ..store.tx import StoreTx
from .messages import ControlMessage


class NotLeader(Exception):
    """A singleton's write refused: this node no longer leads (the fencing epoch moved on)."""


# What a node does with a delivered message (link/control.py's NodeControl.handle).
Handler = Callable[[ControlMessage], Awaitable[None]]


class ClusterBus(Protocol):
    def notify(self, tx: StoreTx, message: ControlMessage) -> None:
        """Inside a write transaction: delivered to every node iff it commits."""
        ...

    async def caught_up(self) -> None:
        """Once this node has handled every message committed before this call."""
        ...

    def leadership(self) -> AbstractAsyncContextManager[None]:
        """Entered once this node leads; held while it runs the singletons."""
        ...

    def fence(self, tx: StoreTx) -> None:
        """Inside a singleton's write transaction: raise NotLeader if another node has taken the
        lead since this one did (its write must not land)."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The bus's own service (a listener), for the server's background nursery."""
        ...

    def unready(self) -> list[str]:
        """What keeps this node from serving, as far as the bus knows (health.py's names): "database"
        while the bus's own connections find the database unreachable, "cluster_bus" while it is
        not listening, "node_row" while this node's row in the cluster is not current. Empty: ready."""
        ...
