"""The SSE stream's live path: every event already queued goes out in one chunk, in publish
order and with its ID; the replay's events are not sent twice; a stream cut off for lagging
gets what it had, then the note. And `sse()` writes what json.dumps of the body would."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import trio

from server.api.deps import ApiState
from server.api.routes_events import CHUNK_EVENTS, _stream, sse
from server.events.broker import EventBroker
from server.events.feeds import (
    CLOUD_SOURCE,
    EVENT_OVERHEAD,
    SUBSCRIBER_BYTES,
    EventFilter,
)
from server.events.log import AppendEvent
from server.logs import IsoClock, iso
from server.store import AsyncStore, SQLiteStore
from server.store.records import EventRecord

DEVICE = "aa" * 12
P = 7


def record(i: int, name: str = "temp", data: bytes = b"", product: int | None = P) -> EventRecord:
    return EventRecord(
        DEVICE, name, data or str(i).encode(), 60, True, 1_764_670_000.0 + i / 7, product_id=product, id=i
    )


def parse(chunk: bytes) -> list[tuple[int, str, dict[str, object]]]:
    out = []
    for block in chunk.decode().split("\n\n"):
        if not block or block.startswith(":"):
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return out


@pytest.fixture
def world(tmp_path: Path) -> SimpleNamespace:
    store = SQLiteStore(tmp_path / "fleetgate.db")
    store.import_devices([(DEVICE, bytes(32))], now=1.0)
    return SimpleNamespace(ctx=SimpleNamespace(events=EventBroker(), store=AsyncStore(store, inline=True)))


def open_stream(world: SimpleNamespace, last_id: int | None = None) -> AsyncIterator[bytes]:
    return _stream(cast(ApiState, world), EventFilter(product_id=P), last_id)


async def test_queued_events_go_out_as_one_chunk_in_order(world: SimpleNamespace) -> None:
    stream = open_stream(world)
    assert await stream.__anext__() == b":ok\n\n"
    for i in range(1, 101):
        world.ctx.events.publish(record(i, name="other" if i % 10 == 0 else "temp"))
    world.ctx.events.publish(record(101, product=None))  # not routed to the product: not on its stream
    events = parse(await stream.__anext__())
    assert [e[0] for e in events] == list(range(1, 101))
    assert [e[2]["data"] for e in events] == [str(i) for i in range(1, 101)]
    world.ctx.events.publish(record(102))
    assert [e[0] for e in parse(await stream.__anext__())] == [102]
    await stream.aclose()  # type: ignore[attr-defined]
    assert len(world.ctx.events) == 0


async def test_a_chunk_holds_at_most_chunk_events(world: SimpleNamespace) -> None:
    stream = open_stream(world)
    await stream.__anext__()
    for i in range(1, CHUNK_EVENTS + 11):
        world.ctx.events.publish(record(i))
    first, second = parse(await stream.__anext__()), parse(await stream.__anext__())
    assert [e[0] for e in first + second] == list(range(1, CHUNK_EVENTS + 11))
    assert len(first) == CHUNK_EVENTS
    await stream.aclose()  # type: ignore[attr-defined]


async def test_replayed_events_are_not_sent_again_live(world: SimpleNamespace) -> None:
    writes: AsyncStore = world.ctx.store
    stored = [writes.sync.write_batch([AppendEvent(record(i))])[0] for i in range(5)]
    ids = [i for i in stored if isinstance(i, int)]
    stream = open_stream(world, last_id=ids[0])
    assert await stream.__anext__() == b":ok\n\n"  # subscribed: what is published now is queued
    for event_id in ids[3:]:  # published after being stored, while the replay reads the store
        world.ctx.events.publish(record(event_id))
    world.ctx.events.publish(record(ids[-1] + 1))
    replay = parse(await stream.__anext__())
    assert [e[0] for e in replay] == ids[1:]
    assert [e[0] for e in parse(await stream.__anext__())] == [ids[-1] + 1]
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_stream_cut_off_gets_what_it_had_then_the_note(world: SimpleNamespace) -> None:
    stream = open_stream(world)
    await stream.__anext__()
    big = b"x" * 1024
    count = SUBSCRIBER_BYTES // (len(big) + len("temp") + EVENT_OVERHEAD)
    for i in range(1, count + 2):  # one more than the byte budget holds
        world.ctx.events.publish(record(i, data=big))
    assert world.ctx.events.cut_offs == 1
    chunks = [chunk async for chunk in stream]  # the stream ends after the note
    assert chunks[-1].startswith(b": cut off")
    assert [e[0] for chunk in chunks[:-1] for e in parse(chunk)] == list(range(1, count + 1))


async def test_next_batch_is_cancel_safe() -> None:
    broker = EventBroker()
    subscription = broker.subscribe(EventFilter())
    with trio.move_on_after(0.01):
        await subscription.next_batch(10)
    for i in range(3):
        broker.publish(record(i))
    assert [e.id for e in await subscription.next_batch(2)] == [0, 1]
    assert [e.id for e in await subscription.next_batch(2)] == [2]
    assert subscription.queued_bytes == 0


def reference_sse(event: EventRecord) -> bytes:
    """What sse() wrote before it was built by hand (json.dumps of the body)."""
    body: dict[str, object] = {
        "data": event.data.decode("utf-8", errors="replace"),
        "ttl": event.ttl,
        "published_at": iso(event.published_at),
        "coreid": CLOUD_SOURCE if event.to_device is not None else event.device_id,
        "public": not event.private,
    }
    if event.product_id is not None:
        body["productID"] = event.product_id
    name = event.name.replace("\n", " ").replace("\r", " ")
    return f"id: {event.id}\nevent: {name}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"21.5",
        "h\u00e9llo \u2603 \U0001f600".encode(),
        b"\xff\xfe not utf-8",
        b'" \\ \n \t \x01 </',
        bytes(range(256)),
    ],
)
def test_sse_writes_what_json_dumps_would(data: bytes) -> None:
    for name in ("temp", "a\nb\rc", "\u00fcn\u00ef"):
        for private in (True, False):
            for product in (None, P):
                for to_device in (None, "bb" * 12):
                    event = EventRecord(
                        DEVICE, name, data, 4_000_000_000, private, 1_764_670_000.9995,
                        product_id=product, id=123, to_device=to_device,
                    )  # fmt: skip
                    assert sse(event) == reference_sse(event)


def test_the_iso_clock_matches_logs_iso_to_the_millisecond() -> None:
    clock = IsoClock()
    rnd = random.Random(7)
    edges = [0.0, -1.5, -0.0000004, -0.9999996, 1.9999995, 1.0000005, 1.9994999, 1_764_670_000.9999996]
    samples = edges + [rnd.uniform(-1e9, 4e9) for _ in range(5000)]
    samples += [
        1.7e9 + rnd.randrange(10**6) + rnd.randrange(10**6) / 1e6 + d for d in (0, 5e-7, -5e-7) for _ in range(2000)
    ]
    samples += sorted(rnd.uniform(1.7e9, 1.7e9 + 5) for _ in range(5000))  # many in one second: the cached prefix
    for t in samples:
        assert clock(t) == iso(t), t
