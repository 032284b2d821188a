"""The publishes of one read: decoded in one pass and queued for the store without a scheduler round
trip each, so one commit (and one batch of acks) covers them; acks still follow the commit."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from protocol.codes import AckResult
from protocol.connection import Connection, NeedData
from protocol.messages import Ping, Pong, Publish, PublishAck, Ready

from ..harness import Harness, start_harness
from .test_session import raw_handshake

PUBLISHES = 20


async def receive_until(stream: trio.abc.Stream, conn: Connection, count: int) -> list[object]:
    events: list[object] = []
    while len(events) < count:
        event = conn.next_event()
        if isinstance(event, NeedData):
            conn.receive_data(await stream.receive_some(65536))
        else:
            events.append(event)
    return events


async def test_one_reads_publishes_are_stored_in_one_commit(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    harness: Harness = await start_harness(tmp_path, nursery, publish_rate=1e6, publish_burst=1_000_000)
    store = harness.ctx.store
    stream, conn = await raw_handshake(harness, harness.known[0])
    await stream.send_all(conn.send(Ready()) + conn.send(Ping(1)))
    assert await receive_until(stream, conn, 1) == [Pong(1)]  # serving; its confirmation committed
    await trio.testing.wait_all_tasks_blocked()
    batches = store.batches

    await stream.send_all(b"".join(conn.send(Publish(seq, "t", b"%d" % seq)) for seq in range(1, PUBLISHES + 1)))
    acks = await receive_until(stream, conn, PUBLISHES)

    assert acks == [PublishAck(seq, AckResult.ACCEPTED) for seq in range(1, PUBLISHES + 1)]
    assert store.batches - batches == 1  # one transaction for the read (one per publish, or a few, before)
    stored = harness.store.list_events(harness.known[0].device_id_hex)
    assert [e.data for e in stored] == [b"%d" % seq for seq in range(1, PUBLISHES + 1)]
