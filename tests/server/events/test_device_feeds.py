"""Device subscriptions in the broker: the delivery rule as a table, and the prefix index."""

from __future__ import annotations

import pytest

from protocol.codes import Privilege
from server.events.broker import EventBroker
from server.events.feeds import API_SOURCE, DeviceFeed, EventFilter, device_may_receive
from server.store.records import EventRecord

ME, OTHER = "aa" * 12, "bb" * 12
P = 7
ALL, NONE = Privilege.all(), Privilege.NONE
PRODUCT_ONLY, WEBHOOKS_ONLY = Privilege.PRODUCT_EVENTS, Privilege.WEBHOOKS


def record(
    device: str = OTHER, product: int | None = P, to: str | None = None, name: str = "temp", i: int = 1
) -> EventRecord:
    return EventRecord(device, name, b"", 60, True, 0.0, product_id=product, id=i, to_device=to)


@pytest.mark.parametrize(
    ("event", "product_id", "privileges", "expected"),
    [
        # Product events: routed to the connection's product, while it holds product_events.
        (record(), P, ALL, True),
        (record(), P, PRODUCT_ONLY, True),
        (record(), P, WEBHOOKS_ONLY, False),
        (record(), P, NONE, False),  # quarantined, denied, limited
        (record(product=8), P, ALL, False),  # another product's stream
        (record(product=None), P, ALL, False),  # published without the privilege: not in the stream
        (record(), None, ALL, False),  # no product (development firmware)
        (record(device=API_SOURCE), P, ALL, True),  # the API's events to the product
        (record(device=ME), P, ALL, False),  # its own event: not echoed
        # Addressed events: that device only, while it holds webhooks.
        (record(device=ME, product=None, to=ME), P, ALL, True),
        (record(device=ME, product=None, to=ME), P, WEBHOOKS_ONLY, True),
        (record(device=ME, product=None, to=ME), P, PRODUCT_ONLY, False),
        (record(device=ME, product=None, to=ME), None, WEBHOOKS_ONLY, True),
        (record(device=OTHER, product=None, to=OTHER), P, ALL, False),
        (record(device=OTHER, product=P, to=OTHER), P, ALL, False),  # never to the product's others
    ],
)
def test_device_may_receive(event: EventRecord, product_id: int | None, privileges: Privilege, expected: bool) -> None:
    assert device_may_receive(event, ME, product_id, privileges) is expected


def feed(broker: EventBroker, device: str, product: int | None, *prefixes: str) -> tuple[DeviceFeed, list[str]]:
    got: list[str] = []
    f = DeviceFeed(device, product, lambda e: got.append(e.name))
    for prefix in prefixes:
        broker.add_prefix(f, prefix)
    return f, got


def test_candidates_by_product_and_prefix_once_each() -> None:
    broker = EventBroker()
    _, mine = feed(broker, ME, P, "temp", "te", "temp/kitchen", "")
    _, other_product = feed(broker, OTHER, 8, "temp")
    _, no_match = feed(broker, "cc" * 12, P, "humidity")
    for i, name in enumerate(["temp/kitchen", "tea", "x", "temp"]):
        broker.publish(record(name=name, i=i))
    assert mine == ["temp/kitchen", "tea", "x", "temp"]  # overlapping prefixes: once per event
    assert other_product == [] and no_match == []
    broker.publish(record(product=None, name="temp"))  # not in any product's stream
    assert len(mine) == 4


def test_addressed_events_find_the_device_whatever_its_product() -> None:
    broker = EventBroker()
    _, mine = feed(broker, ME, P, "hook-response/")
    _, other = feed(broker, OTHER, P, "hook-response/")
    broker.publish(record(device=ME, product=None, to=ME, name="hook-response/t/0"))
    broker.publish(record(device=ME, product=None, to=ME, name="elsewhere"))
    assert mine == ["hook-response/t/0"] and other == []


def test_removing_prefixes_and_closing_feeds_leaves_no_index_behind() -> None:
    broker = EventBroker()
    a, got = feed(broker, ME, P, "temp", "hum")
    b, _ = feed(broker, ME, P, "temp")  # a second connection of the same device (being replaced)
    assert broker.device_feeds() == 2
    broker.remove_prefix(a, "temp")
    broker.publish(record(name="temp"))
    assert got == []
    broker.remove_prefix(a, "never-held")
    broker.close_feed(a)
    broker.close_feed(b)
    assert a.prefixes == set() and broker.device_feeds() == 0
    assert broker._by_product == {} and broker._feeds_by_device == {}


def test_event_streams_and_taps_still_see_everything_first() -> None:
    broker = EventBroker()
    order: list[str] = []
    broker.taps.append(lambda e: order.append("tap"))
    stream = broker.subscribe(EventFilter(product_id=P))
    f = DeviceFeed(ME, P, lambda e: order.append("device"))
    broker.add_prefix(f, "")
    broker.publish(record())
    assert order == ["tap", "device"] and stream.receive.receive_nowait().id == 1
