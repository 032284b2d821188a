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

from .cluster import ClusterBus, LocalBus
from .config import ServerConfig
from .events.broker import EventBroker
from .events.log import EventLog
from .events.publishing import DirectFeed, EventFeed
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
    event_feed: InitVar[EventFeed | None] = None  # None: DirectFeed, published as this process commits
    bus: ClusterBus = field(init=False)  # control messages to every node (cluster/)
    feed: EventFeed = field(init=False)  # how stored events reach `events` (events/publishing.py)
    event_log: EventLog = field(init=False)  # every event enters here: stored, then published

    def __post_init__(self, cluster_bus: ClusterBus | None, event_feed: EventFeed | None) -> None:
        self.bus = cluster_bus if cluster_bus is not None else LocalBus(NodeControl(self).handle)
        self.feed = event_feed if event_feed is not None else DirectFeed(self.events)
        self.event_log = EventLog(self.store, self.feed)
