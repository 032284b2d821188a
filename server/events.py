"""Live event fan-out: stored events reach the subscribers whose filter they match.

Publishing never waits: each subscriber has a bounded queue, and one that falls that far
behind is cut off (its stream ends; it resumes from the store with Last-Event-ID). A slow
subscriber therefore costs itself, never a device or another subscriber.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from .store.base import EventRecord

API_SOURCE = "api"  # the coreid of events published through the API (Particle says "api" too)
CLOUD_SOURCE = "particle-internal"  # the coreid of the cloud's own events to a device (Particle's)
SUBSCRIBER_QUEUE = 1024  # events a subscriber may lag behind before it is cut off


@dataclass(frozen=True, slots=True)
class EventFilter:
    product_id: int | None = None  # the product's stream: only events routed to it
    device_ids: frozenset[str] | None = None  # these devices' own events (None: any device)
    prefix: str = ""  # event names starting with this (Particle's prefix match)

    def matches(self, event: EventRecord) -> bool:
        if self.product_id is not None and event.product_id != self.product_id:
            return False
        if self.device_ids is not None and event.device_id not in self.device_ids:
            return False
        return event.name.startswith(self.prefix)


@dataclass(slots=True)
class Subscription:
    filter: EventFilter
    send: trio.MemorySendChannel[EventRecord]
    receive: trio.MemoryReceiveChannel[EventRecord]
    cut_off: bool = False  # it fell SUBSCRIBER_QUEUE events behind


@dataclass(slots=True)
class EventBroker:
    _by_id: dict[int, Subscription] = field(default_factory=dict)
    # Called with every published event, in order; each must return at once (webhooks queue it).
    taps: list[Callable[[EventRecord], None]] = field(default_factory=list)
    published: int = 0
    cut_offs: int = 0

    def subscribe(self, event_filter: EventFilter) -> Subscription:
        send, receive = trio.open_memory_channel[EventRecord](SUBSCRIBER_QUEUE)
        subscription = Subscription(event_filter, send, receive)
        self._by_id[id(subscription)] = subscription
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._by_id.pop(id(subscription), None)
        subscription.send.close()

    def __len__(self) -> int:
        return len(self._by_id)

    def publish(self, event: EventRecord) -> None:
        """Hand a stored event (it has its ID) to every matching subscriber, without waiting."""
        self.published += 1
        for tap in self.taps:
            tap(event)
        for subscription in list(self._by_id.values()):
            if not subscription.filter.matches(event):
                continue
            try:
                subscription.send.send_nowait(event)
            except trio.WouldBlock:
                subscription.cut_off = True
                self.cut_offs += 1
                self.unsubscribe(subscription)
            except trio.ClosedResourceError:
                self.unsubscribe(subscription)
