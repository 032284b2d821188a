"""Liveness and readiness of one node, for a load balancer's health checks (GET /healthz and
GET /readyz, docs/API.md; docs/CLUSTER.md, "What to put in front").

Ready means this node can take devices and API calls now: the store answers a trivial read within
PROBE_DEADLINE, the device listener is accepting, the node is not stopping, and (cluster mode) the
bus says its own connections reach the database, it listens for the other nodes' notices and its
row in the cluster is current. What fails is named, never where or how (no URL, no error text).
"""

from __future__ import annotations

import trio

from .cluster import ClusterBus
from .store import AsyncStore

PROBE_DEADLINE = 1.0  # seconds the store's trivial read may take before the node counts as unready

# The names /readyz reports, in this order.
DATABASE = "database"
DEVICE_LISTENER = "device_listener"
SHUTTING_DOWN = "shutting_down"


class NodeHealth:
    """What the server tells readiness about itself: set by app.py's Server."""

    def __init__(self) -> None:
        self.listening = False  # the device acceptor is running
        self.stopping = False  # shutdown has begun: the load balancer should send nothing more
        # One probe at a time: a probe stuck on an unreachable database is abandoned at its deadline
        # and its thread finishes on its own; the next check finds the limiter taken and fails fast.
        self._probe = trio.CapacityLimiter(1)

    async def store_answers(self, store: AsyncStore, deadline: float = PROBE_DEADLINE) -> bool:
        """The store's trivial read, in a worker thread (never on the event loop), within `deadline`."""
        with trio.move_on_after(deadline):
            try:
                await trio.to_thread.run_sync(store.sync.ping, limiter=self._probe, abandon_on_cancel=True)
            except Exception:  # the driver's error, whatever it says: the database did not answer
                return False
            return True
        return False

    async def failing(self, store: AsyncStore, bus: ClusterBus) -> list[str]:
        """What keeps this node from being ready; empty when it is."""
        failing = [] if await self.store_answers(store) else [DATABASE]
        failing += [name for name in bus.unready() if name not in failing]
        if not self.listening:
            failing.append(DEVICE_LISTENER)
        if self.stopping:
            failing.append(SHUTTING_DOWN)
        return failing
