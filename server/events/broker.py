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

from ..store.records import EventRecord
from .feeds import SUBSCRIBER_BYTES, SUBSCRIBER_QUEUE, DeviceFeed, EventFilter, Subscription, queued_size


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
