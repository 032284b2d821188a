"""link/send_buffers.py and the writer's use of it: an OTA window is sealed into a reused buffer."""

from __future__ import annotations

import trio
import trio.testing

from protocol import limits
from protocol.messages import OtaAccept, OtaChunk, OtaWindowAck, Ping
from protocol.ota import ImageSender, build_offer
from server.link.send_buffers import SEND_BUFFERS, SendBuffers
from server.link.state import LinkState
from server.link.transport import Transport
from tests.protocol.helpers import deliver, handshake, new_client


def test_a_given_back_buffer_is_taken_again() -> None:
    pool = SendBuffers(max_bytes=100)
    first = pool.take()
    first.extend(bytes(60))
    pool.give(first)
    assert pool.pooled_bytes == 60
    assert pool.take() is first
    assert pool.pooled_bytes == 0
    assert pool.take() == bytearray()  # empty pool: a new one


def test_the_pool_keeps_at_most_its_bytes() -> None:
    pool = SendBuffers(max_bytes=100)
    pool.give(bytearray(60))
    pool.give(bytearray(60))  # over the limit: dropped
    assert pool.pooled_bytes == 60


async def test_the_writer_seals_each_window_into_the_same_pooled_buffer() -> None:
    pair = handshake(client=new_client(rx_max_frame=limits.NOISE_MAX_MESSAGE))
    ours, theirs = trio.testing.memory_stream_pair()
    link = Transport(ours, pair.server, LinkState(), send_queue=64, write_timeout=5.0)
    image = bytes(i % 241 for i in range(8 * limits.MAX_OTA_CHUNK))
    offer = build_offer(transfer_id=1, version=2, image=image, rx_max_frame=limits.NOISE_MAX_MESSAGE, window=4)
    sender = ImageSender(offer, image)
    sender.start(OtaAccept(1, 0))
    received = b""
    pooled: list[int] = []
    async with trio.open_nursery() as nursery:
        link.nursery = nursery
        for _ in range(2):
            for chunk in sender.chunks_to_send():
                link.enqueue(chunk)
            link.enqueue(Ping(7))
            await trio.testing.wait_all_tasks_blocked()
            assert not link.writing
            pooled.append(SEND_BUFFERS.pooled_bytes)
            data = await theirs.receive_some()
            events = deliver(bytes(data), pair.client)
            assert events[-1] == Ping(7)
            received += b"".join(e.data for e in events if isinstance(e, OtaChunk))
            sender.on_ack(OtaWindowAck(1, len(received)))
    assert received == image
    # The first window grew a pooled buffer; the second was sealed into it: the pool did not grow.
    assert pooled[0] >= 4 * limits.MAX_OTA_CHUNK
    assert pooled[1] == pooled[0]
