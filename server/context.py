"""ServerContext: the long-lived parts of one running server, built by app.py and shared by the device link,
the operator actions and the API.

It is here, not in the device link, so that the API and the operator actions reach the store and the live
sessions without importing the session code; the services it holds take the few parts they use, not it.
Everything in it assumes one process (the live-session registry, the broker, the webhook lanes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.noise import KeyPair

from .config import ServerConfig
from .events.broker import EventBroker
from .events.log import EventLog
from .events.publishing import DirectFeed
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
    event_log: EventLog = field(init=False)  # every event enters here: stored, then published

    def __post_init__(self) -> None:
        self.event_log = EventLog(self.store, DirectFeed(self.events))
