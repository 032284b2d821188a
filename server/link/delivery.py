"""What a device connection subscribed to, and the events delivered through it.

SUBSCRIBE is accepted whatever the privileges held now; each event is checked, as the broker
publishes it, against the privileges held at that moment (`_deliver`). Delivery never waits: an
event is queued for the transport's writer or skipped and counted, at most DEVICE_EVENT_QUEUE
queued at a time, and the device learns how many it missed from the next EVENT's `skipped`.
Made with a connection's first SUBSCRIBE (most connections never subscribe).
"""

from __future__ import annotations

import logging
from typing import Protocol

from protocol import limits
from protocol.codes import SubscribeResult
from protocol.connection import State
from protocol.messages import (
    EventMessage,
    Subscribe,
    SubscribeAck,
    Unsubscribe,
    event_fits_frame,
    parse_device_id,
)

from ..events.broker import EventBroker
from ..events.feeds import DEVICE_EVENT_QUEUE, DeviceFeed, device_may_receive
from ..logs import log_event
from ..store.records import EventRecord
from .state import LinkFacts
from .transport import Transport

log = logging.getLogger("fleetgate.session")  # the session's log lines, as they always were


class Subscriber(LinkFacts, Protocol):
    """What delivery reads of its connection (link/session.py's DeviceSession): its facts, no more."""


class Subscriptions:
    __slots__ = (
        "_event_queue_cap",
        "_events",
        "_link",
        "_skipped_unreported",
        "_transport",
        "events_delivered",
        "events_skipped",
        "feed",
    )  # fmt: skip

    def __init__(self, link: Subscriber, transport: Transport, events: EventBroker) -> None:
        self._link = link
        self._transport = transport
        self._events = events
        self.feed: DeviceFeed | None = None  # the broker's entry for this connection, once one is held
        # Room for other traffic (OTA windows, acks) stays in the outgoing queue whatever its size.
        self._event_queue_cap = max(1, min(DEVICE_EVENT_QUEUE, transport.send_queue // 4))
        self._skipped_unreported = 0  # skipped since the last EVENT sent: the next one says so
        self.events_delivered = 0
        self.events_skipped = 0

    def close(self) -> None:
        """Subscriptions end with the connection."""
        if self.feed is not None:
            self._events.close_feed(self.feed)

    def subscribe(self, msg: Subscribe) -> None:
        """Accepted whatever the privileges held now: they may change while connected, and each
        event is checked against the ones held when it is published (`_deliver`)."""
        hello = self._link.hello
        assert hello is not None
        product_id = hello.product_id
        held = self.feed.prefixes if self.feed is not None else set()
        if product_id is None:
            result = SubscribeResult.NOT_PERMITTED  # development firmware: never any product privilege
        elif msg.prefix in held:
            result = SubscribeResult.ACCEPTED  # already held: not counted twice
        elif len(held) >= limits.MAX_SUBSCRIPTIONS:
            result = SubscribeResult.TOO_MANY
        else:
            if self.feed is None:
                self.feed = DeviceFeed(self._link.device_id, product_id, self._deliver)
            self._events.add_prefix(self.feed, msg.prefix)
            result = SubscribeResult.ACCEPTED
        self._transport.enqueue(SubscribeAck(msg.seq, result))
        accepted = result is SubscribeResult.ACCEPTED
        log_event(
            log,
            "device_subscribed" if accepted else "subscription_refused",
            logging.INFO if accepted else logging.WARNING,
            device_id=self._link.device_id,
            prefix=msg.prefix,
            result=result.name.lower(),
            subscriptions=len(self.feed.prefixes) if self.feed is not None else 0,
        )

    def unsubscribe(self, msg: Unsubscribe) -> None:
        """Always ACCEPTED: afterwards the prefix (or, for None, every prefix) is not held."""
        feed = self.feed
        if feed is not None:
            if msg.prefix is None:
                self._events.close_feed(feed)
            else:
                self._events.remove_prefix(feed, msg.prefix)
        self._transport.enqueue(SubscribeAck(msg.seq, SubscribeResult.ACCEPTED))
        log_event(
            log,
            "device_unsubscribed",
            device_id=self._link.device_id,
            prefix=msg.prefix,
            subscriptions=len(feed.prefixes) if feed is not None else 0,
        )

    def _deliver(self, event: EventRecord) -> None:
        """Called by the broker, on the publisher's path, for an event matching a prefix: decide
        with the privileges held right now, then queue it or skip it. Never waits."""
        decision, transport = self._link.decision, self._transport
        conn = transport.conn
        if decision is None or transport.state.close_reason is not None or conn.state is not State.OPEN:
            return
        if not device_may_receive(event, self._link.device_id, decision.product_id, decision.privileges):
            return
        if (
            transport.events_queued >= self._event_queue_cap
            or len(transport.outbox) >= transport.send_queue
            or not _sendable(event)
            or not event_fits_frame(conn.peer_rx_max_frame, event.name, event.data)
        ):
            # Behind (or the event cannot travel to this device): the device learns how many it
            # missed from the next EVENT's `skipped`; it cannot fetch them again.
            self.events_skipped += 1
            self._skipped_unreported += 1
            return
        transport.events_queued += 1
        self.events_delivered += 1
        transport.enqueue(
            EventMessage(
                event_id=event.id or 0,
                name=event.name,
                data=event.data,
                published_at_ms=max(0, int(event.published_at * 1000)),
                ttl=event.ttl,
                source=_source(event),
                to_device=event.to_device is not None,
                skipped=min(self._skipped_unreported, limits.MAX_SKIPPED),
            )
        )
        self._skipped_unreported = 0


def _sendable(event: EventRecord) -> bool:
    """Whether the event's fields fit EVENT's limits. Device and API events always do; a cloud
    event built elsewhere (a hook response's long name) might not, and must not reach the writer,
    where the encoder would refuse it."""
    try:
        name_bytes = len(event.name.encode())
    except UnicodeEncodeError:
        return False
    return (
        1 <= name_bytes <= limits.MAX_EVENT_NAME
        and len(event.data) <= limits.MAX_EVENT_DATA
        and 0 <= event.ttl <= limits.MAX_EVENT_TTL
        and (event.id or 0) <= limits.MAX_EVENT_ID
    )


def _source(event: EventRecord) -> bytes | None:
    """EVENT.source: the publishing device's ID, or None for the cloud's own events (the API's,
    and anything addressed to one device, whose device_id names the recipient)."""
    if event.to_device is not None:
        return None
    try:
        return parse_device_id(event.device_id)
    except ValueError:
        return None
