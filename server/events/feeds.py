"""What an event subscriber holds: filters, stream subscriptions and device feeds, and the source names.

The broker (broker.py) finds the subscribers of each stored event; the rules of who may receive
what live here, beside the structures they apply to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from protocol.codes import Privilege

from ..store.records import EventRecord

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
