"""The live fan-out: filters, and a slow subscriber cut off without slowing anyone else."""

from __future__ import annotations

import trio

from server.events.broker import EventBroker
from server.events.feeds import SUBSCRIBER_QUEUE, EventFilter
from server.store.records import EventRecord


def event(i: int, name: str = "temp", device: str = "aa" * 12, product: int | None = 7) -> EventRecord:
    return EventRecord(device, name, b"", 60, True, 0.0, product_id=product, id=i)


async def test_filters_pick_product_device_and_prefix() -> None:
    broker = EventBroker()
    product = broker.subscribe(EventFilter(product_id=7))
    device = broker.subscribe(EventFilter(device_ids=frozenset({"bb" * 12})))
    prefix = broker.subscribe(EventFilter(product_id=7, prefix="status/"))
    broker.publish(event(1))
    broker.publish(event(2, device="bb" * 12, product=None))  # no product_events privilege
    broker.publish(event(3, name="status/ok"))
    got = {name: [e.id for e in drain(s.receive)] for name, s in (("p", product), ("d", device), ("x", prefix))}
    assert got == {"p": [1, 3], "d": [2], "x": [3]}


def drain(receive: trio.MemoryReceiveChannel[EventRecord]) -> list[EventRecord]:
    out = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


async def test_a_subscriber_that_falls_behind_is_cut_off_and_the_rest_go_on() -> None:
    broker = EventBroker()
    slow, fast = broker.subscribe(EventFilter()), broker.subscribe(EventFilter())
    for i in range(SUBSCRIBER_QUEUE):
        broker.publish(event(i))
        fast.receive.receive_nowait()  # the fast one keeps up
    broker.publish(event(SUBSCRIBER_QUEUE))  # one more than the slow one's queue holds
    assert slow.cut_off and not fast.cut_off and broker.cut_offs == 1 and len(broker) == 1
    assert len(drain(slow.receive)) == SUBSCRIBER_QUEUE  # what it had is still readable, then it ends
    assert fast.receive.receive_nowait().id == SUBSCRIBER_QUEUE
