"""Connection.send_batch: the same bytes as send() one by one, sealed in place into one buffer."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import limits
from protocol.codes import AckResult, CloseReason
from protocol.connection import Connection, State
from protocol.errors import LocalProtocolError
from protocol.messages import (
    Goodbye,
    Hello,
    Message,
    OtaAccept,
    OtaChunk,
    OtaWindowAck,
    Ping,
    Publish,
    PublishAck,
    Welcome,
)
from protocol.noise import CipherState
from protocol.ota import ImageSender, build_offer

from .helpers import FAST, Pair, deliver, device_messages, handshake, new_client, server_messages, state


def twins(*, client_rx: int = 1024) -> tuple[Pair, Pair]:
    """Two links with the same keys and ephemerals: their ciphers run in lockstep."""
    return handshake(client=new_client(rx_max_frame=client_rx)), handshake(client=new_client(rx_max_frame=client_rx))


def one_by_one(conn: Connection, messages: Sequence[Message]) -> bytes:
    return b"".join(conn.send(m) for m in messages)


@FAST
@given(st.lists(server_messages, max_size=8), st.lists(device_messages, max_size=8))
def test_the_same_bytes_as_sending_one_by_one(down: list[Message], up: list[Message]) -> None:
    a, b = twins()
    sent_down, sent_up = bytes(b.server.send_batch(down)), bytes(b.client.send_batch(up))
    assert (sent_down, sent_up) == (one_by_one(a.server, down), one_by_one(a.client, up))
    assert deliver(sent_down + b.server.send_batch([Ping(1)]), b.client) == [*down, Ping(1)]
    assert deliver(sent_up + b.client.send_batch([Ping(2)]), b.server) == [*up, Ping(2)]


def test_a_window_of_the_largest_chunks_arrives_whole() -> None:
    image = bytes(i % 253 for i in range(5 * limits.MAX_OTA_CHUNK + 7))
    a, b = twins(client_rx=limits.NOISE_MAX_MESSAGE)
    offer = build_offer(transfer_id=1, version=2, image=image, rx_max_frame=limits.NOISE_MAX_MESSAGE, window=16)
    sender = ImageSender(offer, image)
    sender.start(OtaAccept(1, 0))
    window = sender.chunks_to_send()
    assert len(window) == 6 and all(type(c.data) is memoryview for c in window)
    data = b.server.send_batch(window)
    assert data == one_by_one(a.server, window)
    events = deliver(bytes(data), b.client)
    assert events == window
    assert b"".join(e.data for e in events if isinstance(e, OtaChunk)) == image


def test_an_empty_batch_is_no_bytes() -> None:
    pair = handshake()
    assert pair.server.send_batch([]) == b""


def test_all_or_nothing_when_one_message_may_not_be_sent() -> None:
    a, b = twins()
    with pytest.raises(LocalProtocolError, match="may not send Publish"):
        b.server.send_batch([Ping(1), Publish(1, "servers do not publish"), Ping(2)])
    assert state(b.server) is State.OPEN
    assert b.server.send(Ping(3)) == a.server.send(Ping(3))  # no nonce was used by the refused batch


def test_a_frame_too_large_for_the_peer_refuses_the_batch() -> None:
    a, b = twins()
    # The device announced 1024 bytes: an offer of 600-byte chunks fits a 1024 frame, not this one's.
    fits = PublishAck(1, AckResult.ACCEPTED)
    offer = build_offer(transfer_id=1, version=2, image=b"x" * 10, rx_max_frame=limits.NOISE_MAX_MESSAGE, window=1)
    with pytest.raises(LocalProtocolError, match="chunk_size"):
        b.server.send_batch([fits, offer])
    assert b.server.send(Ping(1)) == a.server.send(Ping(1))


def test_goodbye_ends_the_batch_and_the_link() -> None:
    a, b = twins()
    bye = Goodbye(CloseReason.SERVER_SHUTDOWN)
    with pytest.raises(LocalProtocolError):
        b.server.send_batch([Ping(1), bye, Ping(2)])  # nothing after goodbye: the batch is refused
    assert state(b.server) is State.OPEN
    data = b.server.send_batch([Ping(1), bye])
    assert data == one_by_one(a.server, [Ping(1), bye])
    assert state(b.server) is State.CLOSED and deliver(bytes(data), b.client) == [Ping(1), bye]


@pytest.mark.parametrize("message", [Hello.__name__, Welcome.__name__])
def test_handshake_messages_go_through_send(message: str) -> None:
    pair = handshake(ready=False)
    conn = pair.client if message == Hello.__name__ else pair.server
    sample = pair.hello if message == Hello.__name__ else pair.welcome
    with pytest.raises(LocalProtocolError, match="send\\(\\), alone"):
        conn.send_batch([sample])


def test_cipher_encrypt_into_matches_encrypt_and_checks_first() -> None:
    key = bytes(range(32))
    one, two = CipherState(key), CipherState(key)
    out = bytearray(5 + limits.TAG_LEN)
    with pytest.raises(LocalProtocolError, match="out has"):
        two.encrypt_into(b"", b"hello", memoryview(out)[1:])
    assert two.nonce == 0  # refused before the nonce was used
    two.encrypt_into(b"ad", b"hello", memoryview(out))
    assert bytes(out) == one.encrypt_with_ad(b"ad", b"hello") and two.nonce == one.nonce == 1
    with pytest.raises(LocalProtocolError, match="needs a key"):
        CipherState().encrypt_into(b"", b"hello", memoryview(out))


@FAST
@given(st.lists(server_messages, max_size=8), st.lists(server_messages, max_size=8), st.binary(max_size=300))
def test_into_a_reused_buffer_the_same_bytes_as_sending_one_by_one(
    first: list[Message], second: list[Message], garbage: bytes
) -> None:
    a, b = twins()
    buffer = bytearray(garbage)  # whatever an earlier batch left in it
    wire = b""
    for batch in (first, second, [Ping(1)]):
        with b.server.send_batch_into(batch, buffer) as view:
            assert bytes(view) == one_by_one(a.server, batch)
            wire += view
    assert deliver(wire, b.client) == [*first, *second, Ping(1)]


def test_a_window_of_the_largest_chunks_into_a_reused_buffer_arrives_whole() -> None:
    image = bytes(i % 251 for i in range(11 * limits.MAX_OTA_CHUNK + 3))
    a, b = twins(client_rx=limits.NOISE_MAX_MESSAGE)
    offer = build_offer(transfer_id=1, version=2, image=image, rx_max_frame=limits.NOISE_MAX_MESSAGE, window=6)
    sender = ImageSender(offer, image)
    sender.start(OtaAccept(1, 0))
    buffer = bytearray()
    received, sizes = b"", set()
    while received != image:
        window = sender.chunks_to_send()
        with b.server.send_batch_into(window, buffer) as view:
            assert view == one_by_one(a.server, window)
            events = deliver(bytes(view), b.client)
        received += b"".join(e.data for e in events if isinstance(e, OtaChunk))
        sender.on_ack(OtaWindowAck(1, len(received)))
        sizes.add(len(buffer))
    # Grown once, by the first (full) window, then reused as it is.
    assert len(sizes) == 1


def test_a_refused_batch_into_a_buffer_uses_no_nonce() -> None:
    a, b = twins()
    buffer = bytearray()
    with pytest.raises(LocalProtocolError):
        b.server.send_batch_into([Ping(1), Publish(1, "servers do not publish")], buffer)
    assert b.server.send_batch_into([Ping(2)], buffer) == a.server.send(Ping(2))
