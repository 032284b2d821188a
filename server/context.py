"""ServerContext: the long-lived parts of one running server, built by app.py and shared by the device link,
the operator actions and the API.

It is here, not in the device link, so that the API and the operator actions reach the store and the live
sessions without importing the session code; the services it holds take the few parts they use, not it.
Everything in it assumes one process (docs/ARCHITECTURE.md, "What assumes one process"); the cluster bus
and the event log are the seams where several processes plug in.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field

from protocol.noise import KeyPair

from .cluster import ClusterBus, ControlMessage, Handler, LocalBus
from .config import ServerConfig
from .events.broker import EventBroker
from .events.log import EventLog
from .events.publishing import DirectFeed
from .link.control import NodeControl
from .link.registry import SessionRegistry
from .rollouts.wakeup import Wakeup
from .store import AsyncStore
from .webhooks.service import WebhookService


@dataclass(slots=True)
class ServerContext:
    config: ServerConfig
    server_key: KeyPair
    store: AsyncStore
    registry: SessionRegistry
    rollout_wakeup: Wakeup = field(default_factory=Wakeup)  # rung when a rollout may have work to do
    events: EventBroker = field(default_factory=EventBroker)  # live event streams
    webhooks: WebhookService = field(default_factory=WebhookService)  # product webhooks and their delivery
    cluster_bus: InitVar[ClusterBus | None] = None  # None: LocalBus, this process is the whole cluster
    bus: ClusterBus = field(init=False)  # control messages to every node (cluster/)
    event_log: EventLog = field(init=False)  # every event enters here: stored, then published

    def __post_init__(self, cluster_bus: ClusterBus | None) -> None:
        self.bus = (
            cluster_bus if cluster_bus is not None else LocalBus(_each(NodeControl(self).handle, self.webhooks.handle))
        )
        self.event_log = EventLog(self.store, DirectFeed(self.events))


def _each(*handlers: Handler) -> Handler:
    """One bus handler made of several: the live sessions' (link/control.py) and the webhook dispatch's."""

    async def handle(message: ControlMessage) -> None:
        for handler in handlers:
            await handler(message)

    return handle
