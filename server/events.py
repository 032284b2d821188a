"""Live event fan-out: stored events reach the subscribers whose filter they match.

Publishing never waits: each subscriber has a bounded queue, and one that falls that far
behind is cut off (its stream ends; it resumes from the store with Last-Event-ID). A slow
subscriber therefore costs itself, never a device or another subscriber.

Devices subscribe too (SUBSCRIBE on the device link, docs/PROTOCOL.md section 19): each
connection has one `DeviceFeed` holding its prefixes, indexed by the product its firmware
reports and by its device ID, so an event costs a lookup per distinct prefix length, not a look
at every connected device. The broker only finds the candidates; `device_may_receive` is the
rule, applied by the session with the connection's privileges at that moment, and the session
queues what passes (a device that falls behind skips events rather than being cut off: it
cannot resume from the store).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import trio

from protocol.codes import Privilege

from .store.base import EventRecord

API_SOURCE = "api"  # the coreid of events published through the API (Particle says "api" too)
# Events a user publishes through the API (POST /v1/devices/events) are stored under this
# prefix and the user's ID: they reach that user's own stream only, shown with coreid "api".
USER_SOURCE = "api:user:"
CLOUD_SOURCE = "particle-internal"  # the coreid of the cloud's own events to a device (Particle's)
# A stream subscriber may lag this many events, or this many bytes of queued events, behind
# before it is cut off (it resumes from the store with Last-Event-ID). Sized for bursts: the
# store writer publishes a whole write batch (up to 512 events) at once, and a subscriber on a
# busy machine misses a scheduling slice now and then; at 30,000 events/s, 16,384 events are
# half a second. The byte bound caps what one lagging subscriber holds (~4 MiB of records
# whatever their size: about 15,000 events of 64 bytes, 3,200 of the largest, 1 KiB).
SUBSCRIBER_QUEUE = 16384
SUBSCRIBER_BYTES = 4 * 1024 * 1024
EVENT_OVERHEAD = 200  # bytes of a queued EventRecord beyond its name and data (object, strings)
# EVENTs a device connection may have queued or in the middle of being written; beyond that
# its events are skipped (and counted), so a device that does not keep up never grows the
# outgoing queue, and never trips the slow-consumer close, because of events alone.
DEVICE_EVENT_QUEUE = 32


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


def user_source(user_id: int) -> str:
    return f"{USER_SOURCE}{user_id}"


def queued_size(event: EventRecord) -> int:
    """What an event counts against SUBSCRIBER_BYTES while queued."""
    return len(event.data) + len(event.name) + EVENT_OVERHEAD


@dataclass(slots=True)
class Subscription:
    filter: EventFilter
    send: trio.MemorySendChannel[EventRecord]
    receive: trio.MemoryReceiveChannel[EventRecord]
    cut_off: bool = False  # it fell SUBSCRIBER_QUEUE events (or SUBSCRIBER_BYTES) behind
    queued_bytes: int = 0  # queued_size() of the events sent and not yet taken

    async def next_batch(self, limit: int) -> list[EventRecord]:
        """Wait for an event, then take every one already queued behind it (up to `limit`),
        oldest first. Raises EndOfChannel once the subscription has ended and is drained.
        Cancel-safe: nothing is taken unless the call returns."""
        batch = [await self.receive.receive()]
        receive_nowait = self.receive.receive_nowait
        try:
            while len(batch) < limit:
                batch.append(receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            pass  # EndOfChannel again on the next call, after what is here is delivered
        self.queued_bytes -= sum(map(queued_size, batch))
        return batch


def device_may_receive(event: EventRecord, device_id: str, product_id: int | None, privileges: Privilege) -> bool:
    """Whether a device connection receives an event that matches one of its prefixes. Deny by default:

    * an event addressed to one device (`to_device`, e.g. a webhook's hook-response) reaches that
      device only, and only while its connection holds WEBHOOKS;
    * any other event reaches a device only if it was routed to the product stream of the
      connection's product (`product_id`, the firmware's) and the connection holds PRODUCT_EVENTS;
    * a device's own events are not echoed back to it.
    """
    if event.to_device is not None:
        return event.to_device == device_id and Privilege.WEBHOOKS in privileges
    if event.device_id == device_id:
        return False
    return product_id is not None and event.product_id == product_id and Privilege.PRODUCT_EVENTS in privileges


@dataclass(eq=False, slots=True)
class DeviceFeed:
    """One device connection's subscriptions. `deliver` is called with each candidate event (a
    prefix matched, by product or by address); it applies `device_may_receive` and must return
    at once. The feed ends with the connection (`EventBroker.close_feed`)."""

    device_id: str
    product_id: int | None  # the product its firmware reports: fixed for the connection
    deliver: Callable[[EventRecord], None]
    prefixes: set[str] = field(default_factory=set)

    def wants(self, name: str) -> bool:
        return any(name.startswith(prefix) for prefix in self.prefixes)


@dataclass(slots=True)
class _PrefixIndex:
    """Feeds by prefix: the feeds matching a name are found with one lookup per prefix length."""

    by_prefix: dict[str, dict[int, DeviceFeed]] = field(default_factory=dict)
    lengths: Counter[int] = field(default_factory=Counter)

    def add(self, feed: DeviceFeed, prefix: str) -> None:
        feeds = self.by_prefix.setdefault(prefix, {})
        if id(feed) not in feeds:
            feeds[id(feed)] = feed
            self.lengths[len(prefix)] += 1

    def remove(self, feed: DeviceFeed, prefix: str) -> None:
        feeds = self.by_prefix.get(prefix)
        if feeds is None or feeds.pop(id(feed), None) is None:
            return
        if not feeds:
            del self.by_prefix[prefix]
        self.lengths[len(prefix)] -= 1
        if not self.lengths[len(prefix)]:
            del self.lengths[len(prefix)]

    def matching(self, name: str) -> Iterator[DeviceFeed]:
        """Each feed with a prefix of `name`, once."""
        found: dict[int, DeviceFeed] = {}
        for length in self.lengths:
            if length <= len(name):
                found.update(self.by_prefix.get(name[:length], {}))
        return iter(list(found.values()))

    def __bool__(self) -> bool:
        return bool(self.by_prefix)


@dataclass(slots=True)
class EventBroker:
    _by_id: dict[int, Subscription] = field(default_factory=dict)
    # Called with every published event, in order; each must return at once (webhooks queue it).
    taps: list[Callable[[EventRecord], None]] = field(default_factory=list)
    published: int = 0
    cut_offs: int = 0
    _by_product: dict[int, _PrefixIndex] = field(default_factory=dict)
    _feeds_by_device: dict[str, dict[int, DeviceFeed]] = field(default_factory=dict)

    def subscribe(self, event_filter: EventFilter) -> Subscription:
        send, receive = trio.open_memory_channel[EventRecord](SUBSCRIBER_QUEUE)
        subscription = Subscription(event_filter, send, receive)
        self._by_id[id(subscription)] = subscription
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._by_id.pop(id(subscription), None)
        subscription.send.close()

    def _cut_off(self, subscription: Subscription) -> None:
        subscription.cut_off = True
        self.cut_offs += 1
        self.unsubscribe(subscription)

    def __len__(self) -> int:
        return len(self._by_id)

    # ---------------------------------------------------------------- device subscriptions

    def add_prefix(self, feed: DeviceFeed, prefix: str) -> None:
        """Add a prefix to a device connection's feed (the session enforces the limit)."""
        feed.prefixes.add(prefix)
        self._feeds_by_device.setdefault(feed.device_id, {})[id(feed)] = feed
        if feed.product_id is not None:
            self._by_product.setdefault(feed.product_id, _PrefixIndex()).add(feed, prefix)

    def remove_prefix(self, feed: DeviceFeed, prefix: str) -> None:
        feed.prefixes.discard(prefix)
        if feed.product_id is not None and (index := self._by_product.get(feed.product_id)) is not None:
            index.remove(feed, prefix)
            if not index:
                del self._by_product[feed.product_id]
        if not feed.prefixes:
            feeds = self._feeds_by_device.get(feed.device_id, {})
            feeds.pop(id(feed), None)
            if not feeds:
                self._feeds_by_device.pop(feed.device_id, None)

    def close_feed(self, feed: DeviceFeed) -> None:
        """The connection ended: its subscriptions with it."""
        for prefix in list(feed.prefixes):
            self.remove_prefix(feed, prefix)

    def device_feeds(self) -> int:
        """Device connections holding at least one prefix."""
        return sum(len(feeds) for feeds in self._feeds_by_device.values())

    def _candidates(self, event: EventRecord) -> Iterator[DeviceFeed]:
        if event.to_device is not None:
            for feed in list(self._feeds_by_device.get(event.to_device, {}).values()):
                if feed.wants(event.name):
                    yield feed
        elif event.product_id is not None and (index := self._by_product.get(event.product_id)) is not None:
            yield from index.matching(event.name)

    def publish(self, event: EventRecord) -> None:
        """Hand a stored event (it has its ID) to every matching subscriber, without waiting:
        taps, then event streams, then device connections whose prefixes match."""
        self.published += 1
        for tap in self.taps:
            tap(event)
        for subscription in list(self._by_id.values()):
            if not subscription.filter.matches(event):
                continue
            size = queued_size(event)
            if subscription.queued_bytes + size > SUBSCRIBER_BYTES:
                self._cut_off(subscription)
                continue
            try:
                subscription.send.send_nowait(event)
            except trio.WouldBlock:
                self._cut_off(subscription)
            except trio.ClosedResourceError:
                self.unsubscribe(subscription)
            else:
                subscription.queued_bytes += size
        for feed in self._candidates(event):
            feed.deliver(event)
