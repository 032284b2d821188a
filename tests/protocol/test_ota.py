"""The OTA transfer helpers (protocol.ota): ImageReceiver on the device, ImageSender on the server.

Messages pass through the codec (encode, decode) on their way, as they would on the wire.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

import hypothesis
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from protocol import limits
from protocol.codes import CloseReason, OtaAbortReason, OtaRefusal, OtaResult
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.messages import (
    Message,
    OtaAbort,
    OtaAccept,
    OtaChunk,
    OtaComplete,
    OtaDefer,
    OtaOffer,
    OtaRefuse,
    OtaWindowAck,
    decode_message,
    encode_message,
)
from protocol.ota import (
    ChunkProblem,
    ChunkResult,
    ImageReceiver,
    ImageSender,
    ReceiverState,
    ack_interval,
    build_offer,
    max_chunk_for_frame,
)

from .helpers import FAST, THOROUGH, deliver, handshake, new_client

SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(200, 232)))
OTHER_SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))
PUBLIC_KEY = SIGNING_KEY.public_key()
IMAGE = bytes((i * 7 + 3) % 256 for i in range(1000))
M = TypeVar("M", bound=Message)


def wire(message: M) -> M:
    """Through the codec and back, as across the link."""
    decoded = decode_message(encode_message(message))
    assert decoded == message
    assert type(decoded) is type(message)
    return decoded


def offer_for(image: bytes = IMAGE, *, transfer_id: int = 1, chunk_size: int = 100, window: int = 4) -> OtaOffer:
    return build_offer(
        transfer_id=transfer_id,
        version=8,
        image=image,
        rx_max_frame=limits.NOISE_MAX_MESSAGE,
        window=window,
        chunk_size=chunk_size,
    )


@dataclass
class Device:
    """An ImageReceiver plus the storage it writes to."""

    receiver: ImageReceiver = field(default_factory=ImageReceiver)
    flash: bytearray = field(default_factory=bytearray)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.flash[offset : offset + length])

    def take(self, chunk: OtaChunk) -> ChunkResult:
        result = self.receiver.receive_chunk(wire(chunk))
        if result.store:
            end = chunk.offset + len(chunk.data)
            if len(self.flash) < end:
                self.flash.extend(bytes(end - len(self.flash)))
            self.flash[chunk.offset : end] = chunk.data
        return result


def state_of(device: Device) -> ReceiverState:
    """The receiver's state, read through a call so mypy does not keep a stale narrowed value."""
    return device.receiver.state


def accepted(device: Device, offer: OtaOffer) -> OtaAccept:
    assert device.receiver.offer(wire(offer)) is None
    assert state_of(device) is ReceiverState.OFFERED
    return wire(device.receiver.accept())


def feed_all(device: Device, sender: ImageSender) -> list[OtaWindowAck]:
    """Lock-step: send what the window allows, deliver it, return acks; until all acked."""
    acks: list[OtaWindowAck] = []
    while not sender.done:
        batch = sender.chunks_to_send()
        assert batch, "window stuck"
        for chunk in batch:
            result = device.take(chunk)
            assert result.problem is None and result.store
            if result.ack is not None:
                acks.append(wire(result.ack))
                assert sender.on_ack(result.ack)
    return acks


# ---------------------------------------------------------------------------- happy paths


def test_plain_transfer_ends_verified() -> None:
    device = Device()
    offer = offer_for()
    accept = accepted(device, offer)
    assert accept == OtaAccept(1, 0)
    assert state_of(device) is ReceiverState.RECEIVING
    sender = ImageSender(offer, IMAGE)
    assert sender.start(accept)
    acks = feed_all(device, sender)
    assert [a.received_until for a in acks] == [200, 400, 600, 800, 1000]  # every window // 2 chunks
    assert state_of(device) is ReceiverState.VERIFYING
    complete = wire(device.receiver.verify(device.read))
    assert complete.status is OtaResult.VERIFIED and complete.transfer_id == 1
    assert state_of(device) is ReceiverState.DONE
    assert bytes(device.flash) == IMAGE


@pytest.mark.parametrize(
    ("window", "every"), [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (9, 4), (limits.MAX_OTA_WINDOW, 64)]
)
def test_ack_interval_and_acks_at_the_end(window: int, every: int) -> None:
    assert ack_interval(window) == every
    device = Device()
    offer = offer_for(chunk_size=30, window=window)  # 34 chunks, the last one short
    sender = ImageSender(offer, IMAGE)
    sender.start(accepted(device, offer))
    acks = feed_all(device, sender)
    ends = [min(30 * k, len(IMAGE)) for k in range(every, 34, every)]
    if not ends or ends[-1] != len(IMAGE):
        ends.append(len(IMAGE))
    assert [a.received_until for a in acks] == ends


def test_sender_keeps_window_chunks_in_flight() -> None:
    offer = offer_for(chunk_size=50, window=4)
    sender = ImageSender(offer, IMAGE)
    sender.start(OtaAccept(1, 0))
    first = sender.chunks_to_send()
    assert [c.offset for c in first] == [0, 50, 100, 150]
    assert sender.in_flight == 4 and sender.chunks_to_send() == []
    assert sender.on_ack(OtaWindowAck(1, 100))  # two chunks stored: two more may go
    assert [c.offset for c in sender.chunks_to_send()] == [200, 250]
    assert sender.on_ack(OtaWindowAck(1, 120))  # mid-chunk: that chunk is still in flight
    assert sender.chunks_to_send() == []
    assert sender.on_ack(OtaWindowAck(1, 300))
    assert [c.offset for c in sender.chunks_to_send()] == [300, 350, 400, 450]
    assert sender.received_until == 300 and not sender.done


def test_reader_callback_and_short_last_chunk() -> None:
    reads: list[tuple[int, int]] = []

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return IMAGE[offset : offset + length]

    offer = offer_for(chunk_size=300, window=8)
    sender = ImageSender(offer, read)
    sender.start(OtaAccept(1, 0))
    chunks = sender.chunks_to_send()
    assert reads == [(0, 300), (300, 300), (600, 300), (900, 100)]
    assert b"".join(c.data for c in chunks) == IMAGE


def test_build_offer() -> None:
    offer = build_offer(transfer_id=9, version=3, image=IMAGE, rx_max_frame=512, window=16, signature=bytes(64))
    assert offer.size == len(IMAGE) and offer.sha256 == hashlib.sha256(IMAGE).digest()
    assert offer.chunk_size == max_chunk_for_frame(512) == 481
    assert wire(offer) == offer
    assert build_offer(transfer_id=9, version=3, image=IMAGE, rx_max_frame=512, window=1, chunk_size=1).chunk_size == 1
    for bad in (0, 482):
        with pytest.raises(LocalProtocolError):
            build_offer(transfer_id=9, version=3, image=IMAGE, rx_max_frame=512, window=1, chunk_size=bad)


def test_build_offer_takes_a_known_digest_as_is() -> None:
    known = hashlib.sha256(b"what the server verified at upload").digest()
    offer = build_offer(transfer_id=1, version=2, image=IMAGE, rx_max_frame=512, window=4, sha256=known)
    assert offer.sha256 == known  # trusted, not recomputed: a wrong one fails at the device's check
    for bad in (b"", known[:31], known + b"\x00"):
        with pytest.raises(LocalProtocolError, match="sha256"):
            build_offer(transfer_id=1, version=2, image=IMAGE, rx_max_frame=512, window=4, sha256=bad)


def test_chunks_are_views_of_the_image_not_copies() -> None:
    sender = ImageSender(offer_for(chunk_size=300, window=8), IMAGE)
    sender.start(OtaAccept(1, 0))
    chunks = sender.chunks_to_send()
    assert all(type(c.data) is memoryview and c.data.obj is IMAGE for c in chunks)
    assert [bytes(c.data) for c in chunks] == [IMAGE[0:300], IMAGE[300:600], IMAGE[600:900], IMAGE[900:]]
    assert [wire(c) for c in chunks] == chunks  # they encode like bytes; the device decodes bytes


# ---------------------------------------------------------------------------- answers, resume, abort


def test_defer_and_refuse_return_to_idle() -> None:
    device = Device()
    offer = offer_for()
    assert device.receiver.offer(offer) is None
    assert wire(device.receiver.defer(300)) == OtaDefer(1, 300)
    assert state_of(device) is ReceiverState.IDLE
    assert device.receiver.offer(offer_for(transfer_id=2)) is None
    refusal = wire(device.receiver.refuse(OtaRefusal.DOWNGRADE_NOT_ALLOWED, "running 9"))
    assert refusal == OtaRefuse(2, OtaRefusal.DOWNGRADE_NOT_ALLOWED, "running 9")
    assert state_of(device) is ReceiverState.IDLE
    with pytest.raises(LocalProtocolError):
        device.receiver.accept()  # nothing to answer


def test_resume_after_a_dropped_link() -> None:
    device = Device()
    offer = offer_for(window=2)
    sender = ImageSender(offer, IMAGE)
    sender.start(accepted(device, offer))
    for chunk in sender.chunks_to_send():  # 2 chunks: 200 bytes
        device.take(chunk)
    device.receiver.connection_lost()
    assert state_of(device) is ReceiverState.IDLE

    # Next connection: the same image, another transfer and other chunking.
    offer2 = offer_for(transfer_id=2, chunk_size=333, window=3)
    accept = accepted(device, offer2)
    assert accept == OtaAccept(2, 200)
    sender2 = ImageSender(offer2, IMAGE)
    sender2.start(accept)
    assert sender2.chunks_to_send()[0].offset == 200
    sender2 = ImageSender(offer2, IMAGE)  # (start over: the chunks above were not delivered)
    sender2.start(accept)
    feed_all(device, sender2)
    assert device.receiver.verify(device.read).status is OtaResult.VERIFIED
    assert bytes(device.flash) == IMAGE


def test_different_image_discards_what_was_stored() -> None:
    device = Device()
    offer = offer_for()
    sender = ImageSender(offer, IMAGE)
    sender.start(accepted(device, offer))
    device.take(sender.chunks_to_send()[0])
    assert device.receiver.abort(OtaAbort(1, OtaAbortReason.SUPERSEDED))

    other = IMAGE[::-1]
    offer2 = offer_for(other, transfer_id=2)
    assert device.receiver.offer(offer2) is None
    assert device.receiver.received_until == 0  # not this image's bytes...
    assert device.receiver.defer(60) == OtaDefer(2, 60)
    # ... but deferring it discards nothing: the first image still resumes.
    assert accepted(device, offer_for(transfer_id=3)) == OtaAccept(3, 100)
    assert device.receiver.abort(OtaAbort(3, OtaAbortReason.SUPERSEDED))
    assert accepted(device, offer_for(other, transfer_id=4)) == OtaAccept(4, 0)  # accepting does
    assert device.receiver.abort(OtaAbort(4, OtaAbortReason.SUPERSEDED))
    assert accepted(device, offer_for(transfer_id=5)) == OtaAccept(5, 0)


def test_abort_keeps_bytes_and_stale_aborts_are_ignored() -> None:
    device = Device()
    offer = offer_for()
    assert device.receiver.abort(OtaAbort(1, OtaAbortReason.TIMEOUT)) is False  # nothing offered
    sender = ImageSender(offer, IMAGE)
    sender.start(accepted(device, offer))
    for chunk in sender.chunks_to_send():
        device.take(chunk)
    assert device.receiver.abort(OtaAbort(99, OtaAbortReason.TIMEOUT)) is False  # another transfer
    assert state_of(device) is ReceiverState.RECEIVING
    assert device.receiver.abort(wire(OtaAbort(1, OtaAbortReason.ROLLOUT_PAUSED)))
    assert state_of(device) is ReceiverState.IDLE
    assert device.receiver.abort(OtaAbort(1, OtaAbortReason.ROLLOUT_PAUSED)) is False  # already ended
    assert accepted(device, offer_for(transfer_id=2)) == OtaAccept(2, 400)


def test_abort_while_offered() -> None:
    device = Device()
    assert device.receiver.offer(offer_for()) is None
    assert device.receiver.abort(OtaAbort(1, OtaAbortReason.SUPERSEDED))
    assert device.receiver.offer(offer_for(transfer_id=2)) is None


def test_everything_stored_resumes_straight_to_verifying() -> None:
    device = Device()
    offer = offer_for()
    sender = ImageSender(offer, IMAGE)
    sender.start(accepted(device, offer))
    feed_all(device, sender)
    device.receiver.connection_lost()  # dropped before verify() / OTA_COMPLETE

    offer2 = offer_for(transfer_id=2)
    accept = accepted(device, offer2)
    assert accept == OtaAccept(2, len(IMAGE))
    assert state_of(device) is ReceiverState.VERIFYING
    sender2 = ImageSender(offer2, IMAGE)
    assert sender2.start(accept) and sender2.done
    assert sender2.chunks_to_send() == []
    assert device.receiver.verify().status is OtaResult.VERIFIED


# ---------------------------------------------------------------------------- chunk problems


def _receiving(window: int = 4) -> tuple[Device, OtaOffer, list[OtaChunk]]:
    device = Device()
    offer = offer_for(window=window)
    sender = ImageSender(offer, IMAGE)
    sender.start(accepted(device, offer))
    chunks = sender.chunks_to_send()
    assert device.take(chunks[0]).store
    return device, offer, chunks


@pytest.mark.parametrize(
    ("chunk", "problem"),
    [
        (OtaChunk(2, 100, IMAGE[100:200]), ChunkProblem.WRONG_TRANSFER),
        (OtaChunk(1, 100, IMAGE[100:201]), ChunkProblem.TOO_LONG),
        (OtaChunk(1, 990, bytes(20)), ChunkProblem.BEYOND_SIZE),
        (OtaChunk(1, 1000, b"x"), ChunkProblem.BEYOND_SIZE),
        (OtaChunk(1, 50, IMAGE[50:150]), ChunkProblem.OVERLAP),
        (OtaChunk(1, 0, IMAGE[0:100]), ChunkProblem.OVERLAP),  # even a faithful repeat
        (OtaChunk(1, 200, IMAGE[200:300]), ChunkProblem.GAP),
    ],
    ids=lambda v: v.name if isinstance(v, ChunkProblem) else "",
)
def test_bad_chunk_fails_the_transfer(chunk: OtaChunk, problem: ChunkProblem) -> None:
    device, _, chunks = _receiving()
    result = device.take(chunk)
    assert result.problem is problem
    assert not result.store and result.ack is None
    assert result.complete is not None
    complete = wire(result.complete)
    assert complete.transfer_id == 1 and complete.status is OtaResult.BAD_CHUNK
    assert problem.value in complete.detail
    assert state_of(device) is ReceiverState.FAILED
    # The rest of the window was in flight: stale, ignored.
    for rest in chunks[1:]:
        assert device.take(rest) == ChunkResult(store=False, problem=ChunkProblem.STALE)
    # What was stored before the bad chunk is kept for the next offer of the image.
    assert accepted(device, offer_for(transfer_id=3)) == OtaAccept(3, 100)


def test_chunk_while_not_receiving_is_a_server_fault() -> None:
    device = Device()
    chunk = OtaChunk(1, 0, IMAGE[:100])
    with pytest.raises(RemoteProtocolError) as info:
        device.take(chunk)  # nothing offered
    assert info.value.reason is CloseReason.UNEXPECTED_MESSAGE
    assert device.receiver.offer(offer_for()) is None
    with pytest.raises(RemoteProtocolError):
        device.take(chunk)  # offered, not accepted
    device.receiver.defer(5)
    with pytest.raises(RemoteProtocolError):
        device.take(chunk)  # deferred


def test_chunk_after_abort_or_done_is_a_server_fault() -> None:
    device, _, chunks = _receiving()
    device.receiver.abort(OtaAbort(1, OtaAbortReason.TIMEOUT))
    with pytest.raises(RemoteProtocolError):
        device.take(chunks[1])
    device = Device()
    offer = offer_for()
    sender = ImageSender(offer, IMAGE)
    sender.start(accepted(device, offer))
    feed_all(device, sender)
    assert device.receiver.verify().status is OtaResult.VERIFIED
    with pytest.raises(RemoteProtocolError):
        device.take(OtaChunk(1, 900, IMAGE[900:]))


def test_chunk_while_verifying_fails_the_transfer() -> None:
    device = Device()
    offer = offer_for()
    sender = ImageSender(offer, IMAGE)
    sender.start(accepted(device, offer))
    feed_all(device, sender)
    assert device.take(OtaChunk(1, 900, IMAGE[900:])).problem is ChunkProblem.OVERLAP


def test_offer_during_a_transfer_is_a_server_fault() -> None:
    for states in ("offered", "receiving", "verifying"):
        device = Device()
        offer = offer_for()
        device.receiver.offer(offer)
        if states != "offered":
            sender = ImageSender(offer, IMAGE)
            sender.start(device.receiver.accept())
            if states == "verifying":
                feed_all(device, sender)
        with pytest.raises(RemoteProtocolError) as info:
            device.receiver.offer(offer_for(transfer_id=2))
        assert info.value.reason is CloseReason.UNEXPECTED_MESSAGE


def test_write_failed_forgets_the_chunk_that_was_not_stored() -> None:
    device, _, chunks = _receiving()
    result = device.receiver.receive_chunk(chunks[1])
    assert result.store  # ... but the write fails:
    complete = wire(device.receiver.write_failed("flash sector 12 " + "x" * 200))
    assert complete.status is OtaResult.WRITE_FAILED
    assert len(complete.detail.encode()) <= limits.MAX_TEXT_LEN
    assert state_of(device) is ReceiverState.FAILED
    assert device.take(chunks[2]).problem is ChunkProblem.STALE
    offer2 = offer_for(transfer_id=2)
    accept = accepted(device, offer2)
    assert accept == OtaAccept(2, 100)  # not 200
    sender = ImageSender(offer2, IMAGE)
    sender.start(accept)
    feed_all(device, sender)
    assert device.receiver.verify(device.read).status is OtaResult.VERIFIED
    with pytest.raises(LocalProtocolError):
        device.receiver.write_failed()  # nothing in progress


# ---------------------------------------------------------------------------- integrity


def _received(device: Device, offer: OtaOffer, image: bytes = IMAGE, tamper_at: int | None = None) -> None:
    sender = ImageSender(offer, image)
    sender.start(accepted(device, offer))
    while not sender.done:
        for chunk in sender.chunks_to_send():
            if tamper_at is not None and chunk.offset <= tamper_at < chunk.offset + len(chunk.data):
                data = bytearray(chunk.data)
                data[tamper_at - chunk.offset] ^= 0x01
                chunk = OtaChunk(chunk.transfer_id, chunk.offset, bytes(data))
            result = device.take(chunk)
            if result.ack is not None:
                sender.on_ack(result.ack)


@FAST
@given(st.integers(0, len(IMAGE) - 1), st.integers(1, 200), st.integers(1, 8))
def test_tampered_chunk_is_a_hash_mismatch(position: int, chunk_size: int, window: int) -> None:
    device = Device()
    offer = offer_for(chunk_size=chunk_size, window=window)
    _received(device, offer, tamper_at=position)
    complete = device.receiver.verify()
    assert complete.status is OtaResult.HASH_MISMATCH
    assert state_of(device) is ReceiverState.FAILED
    # Bad bytes are never resumed: the next offer starts from 0 and succeeds.
    offer2 = offer_for(transfer_id=2, chunk_size=chunk_size, window=window)
    device2 = device
    _received(device2, offer2)
    assert device2.receiver.verify(device2.read).status is OtaResult.VERIFIED
    assert bytes(device2.flash) == IMAGE


def test_stored_copy_is_checked_when_read_back() -> None:
    device = Device()
    _received(device, offer_for())
    device.flash[500] ^= 0xFF  # the flash lost a bit after the write
    assert device.receiver.verify(device.read).status is OtaResult.HASH_MISMATCH
    with pytest.raises(LocalProtocolError):
        device.receiver.verify(device.read)  # nothing to verify any more
    bad = Device()
    _received(bad, offer_for())
    with pytest.raises(LocalProtocolError):
        bad.receiver.verify(lambda offset, length: IMAGE[:10])  # a reader that returns too little


def signed_offer(signature: bytes | None, transfer_id: int = 1) -> OtaOffer:
    return build_offer(
        transfer_id=transfer_id,
        version=8,
        image=IMAGE,
        rx_max_frame=1024,
        window=4,
        signature=signature,
    )


def test_good_signature_verifies() -> None:
    device = Device(ImageReceiver(public_key=PUBLIC_KEY, require_signature=True))
    _received(device, signed_offer(SIGNING_KEY.sign(IMAGE)))
    assert device.receiver.verify(device.read).status is OtaResult.VERIFIED


@pytest.mark.parametrize("require", [True, False])
@pytest.mark.parametrize("how", ["other key", "flipped bit", "signs other bytes"])
def test_bad_signature_is_signature_invalid(require: bool, how: str) -> None:
    signature = {
        "other key": OTHER_SIGNING_KEY.sign(IMAGE),
        "flipped bit": bytes([SIGNING_KEY.sign(IMAGE)[0] ^ 1]) + SIGNING_KEY.sign(IMAGE)[1:],
        "signs other bytes": SIGNING_KEY.sign(IMAGE + b"\x00"),
    }[how]
    device = Device(ImageReceiver(public_key=PUBLIC_KEY, require_signature=require))
    _received(device, signed_offer(signature))
    complete = device.receiver.verify(device.read)
    assert complete.status is OtaResult.SIGNATURE_INVALID
    assert state_of(device) is ReceiverState.FAILED
    assert accepted(device, signed_offer(signature, transfer_id=2)).offset == 0  # discarded


def test_unsigned_offer_when_a_signature_is_required() -> None:
    device = Device(ImageReceiver(public_key=PUBLIC_KEY, require_signature=True))
    refusal = device.receiver.offer(signed_offer(None))
    assert refusal is not None and wire(refusal).reason is OtaRefusal.BAD_SIGNATURE and refusal.transfer_id == 1
    assert state_of(device) is ReceiverState.IDLE
    # A device whose policy tightens mid-transfer still never installs the unsigned image.
    device = Device(ImageReceiver(public_key=PUBLIC_KEY))
    _received(device, signed_offer(None))
    device.receiver.require_signature = True
    assert device.receiver.verify(device.read).status is OtaResult.SIGNATURE_INVALID


def test_signature_checks_need_the_image_and_a_key() -> None:
    with pytest.raises(LocalProtocolError):
        ImageReceiver(require_signature=True)
    device = Device(ImageReceiver(public_key=PUBLIC_KEY))
    _received(device, signed_offer(SIGNING_KEY.sign(IMAGE)))
    with pytest.raises(LocalProtocolError):
        device.receiver.verify()  # no reader: cannot check the signature
    # Without a key the signature is not checked (and not required).
    keyless = Device()
    _received(keyless, signed_offer(OTHER_SIGNING_KEY.sign(IMAGE)))
    assert keyless.receiver.verify().status is OtaResult.VERIFIED
    # A key but an unsigned offer, not required: accepted on the hash alone.
    unsigned = Device(ImageReceiver(public_key=PUBLIC_KEY))
    _received(unsigned, signed_offer(None))
    assert unsigned.receiver.verify().status is OtaResult.VERIFIED


# ---------------------------------------------------------------------------- sender faults


def test_sender_refuses_device_faults() -> None:
    offer = offer_for(chunk_size=100, window=4)
    sender = ImageSender(offer, IMAGE)
    with pytest.raises(LocalProtocolError):
        sender.chunks_to_send()  # not started
    with pytest.raises(RemoteProtocolError):
        sender.on_ack(OtaWindowAck(1, 0))  # ack before accept
    assert sender.start(OtaAccept(2, 0)) is False  # answers another offer
    with pytest.raises(RemoteProtocolError) as info:
        sender.start(OtaAccept(1, len(IMAGE) + 1))
    assert info.value.reason is CloseReason.MESSAGE_INVALID
    assert sender.start(OtaAccept(1, 100))
    with pytest.raises(RemoteProtocolError) as info:
        sender.start(OtaAccept(1, 100))
    assert info.value.reason is CloseReason.UNEXPECTED_MESSAGE
    sender.chunks_to_send()  # 100..500 in flight
    assert sender.on_ack(OtaWindowAck(7, 900)) is False  # an earlier transfer's: ignored
    with pytest.raises(RemoteProtocolError):
        sender.on_ack(OtaWindowAck(1, 501))  # beyond what was sent
    with pytest.raises(RemoteProtocolError):
        sender.on_ack(OtaWindowAck(1, 99))  # below the accept offset
    assert sender.on_ack(OtaWindowAck(1, 300))
    with pytest.raises(RemoteProtocolError):
        sender.on_ack(OtaWindowAck(1, 200))  # backwards


def test_sender_refuses_local_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        ImageSender(offer_for(), IMAGE[:-1])
    sender = ImageSender(offer_for(), lambda offset, length: b"short")
    sender.start(OtaAccept(1, 0))
    with pytest.raises(LocalProtocolError):
        sender.chunks_to_send()


# ---------------------------------------------------------------------------- random transfers


@dataclass
class Attempt:
    chunk_size: int
    window: int
    interruption: str  # "none", "drop" (link lost), "abort" (server aborts)
    cut: float  # where, as a fraction of the messages the transfer needs


interrupted_attempts = st.builds(
    Attempt,
    chunk_size=st.integers(1, 300),
    window=st.integers(1, 12),
    interruption=st.sampled_from(["drop", "abort"]),
    cut=st.floats(0, 1),
)
final_attempts = st.builds(
    Attempt,
    chunk_size=st.integers(1, 600),
    window=st.integers(1, limits.MAX_OTA_WINDOW),
    interruption=st.just("none"),
    cut=st.just(1.0),
)


@dataclass
class Link:
    """One connection's worth of one transfer: two FIFO directions, in flight."""

    device: Device
    sender: ImageSender
    attempt: Attempt
    rnd: random.Random
    down: deque[Message] = field(default_factory=deque)  # server -> device
    up: deque[Message] = field(default_factory=deque)  # device -> server
    sent_ends: list[int] = field(default_factory=list)
    server_stopped: bool = False
    result: OtaComplete | None = None

    def send_chunks(self) -> None:
        if self.server_stopped:
            return
        for chunk in self.sender.chunks_to_send():
            self.down.append(chunk)
            self.sent_ends.append(chunk.offset + len(chunk.data))
        # Checked independently of the sender's own count.
        unacked = sum(1 for end in self.sent_ends if end > self.sender.received_until)
        assert unacked <= self.attempt.window

    def to_device(self) -> None:
        message = wire(self.down.popleft())
        receiver = self.device.receiver
        if isinstance(message, OtaAbort):
            receiver.abort(message)
            return
        assert isinstance(message, OtaChunk)
        outcome = self.device.take(message)
        assert outcome.problem is None and outcome.store
        if outcome.ack is not None:
            self.up.append(outcome.ack)
        if receiver.state is ReceiverState.VERIFYING:
            self.up.append(receiver.verify(self.device.read))

    def to_server(self) -> None:
        message = wire(self.up.popleft())
        if isinstance(message, OtaComplete):
            self.result = message
        elif not self.server_stopped:  # after an abort the server ignores the transfer's acks
            assert isinstance(message, OtaWindowAck)
            assert self.sender.on_ack(message)
            self.send_chunks()

    def run(self) -> None:
        if state_of(self.device) is ReceiverState.VERIFYING:  # resumed with every byte
            self.up.append(self.device.receiver.verify(self.device.read))
        self.send_chunks()
        offer = self.sender.offer
        chunks = -(-(offer.size - self.sender.received_until) // offer.chunk_size)
        after = int(self.attempt.cut * (chunks + chunks // ack_interval(offer.window) + 2))
        steps = 0
        while self.down or self.up:
            if self.attempt.interruption != "none" and steps == after:
                self.server_stopped = True
                if self.attempt.interruption == "drop":
                    self.device.receiver.connection_lost()
                    return  # whatever was in flight is lost
                self.down.append(OtaAbort(self.sender.offer.transfer_id, OtaAbortReason.ROLLOUT_PAUSED))
            steps += 1
            if self.down and (not self.up or self.rnd.random() < 0.5):
                self.to_device()
            else:
                self.to_server()


@THOROUGH
@given(
    size=st.integers(1, 3000),
    plan=st.lists(interrupted_attempts, min_size=1, max_size=4),
    final=final_attempts,
    signed=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_transfers_with_interruptions_end_verified(
    size: int, plan: list[Attempt], final: Attempt, signed: bool, seed: int
) -> None:
    """Random image, chunking, window, interleaving of the two directions, and links dropped
    or transfers aborted at random points: the last attempt always ends VERIFIED with the
    device holding exactly the image, every attempt resumes where the last one stopped, and
    the server never has more than `window` chunks in flight."""
    rnd = random.Random(seed)
    image = rnd.randbytes(size)
    device = Device(ImageReceiver(public_key=PUBLIC_KEY if signed else None, require_signature=signed))
    signature = SIGNING_KEY.sign(image) if signed else None
    resume_at = 0
    for number, attempt in enumerate([*plan, final], start=1):
        offer = build_offer(
            transfer_id=number,
            version=8,
            image=image,
            rx_max_frame=limits.NOISE_MAX_MESSAGE,
            window=attempt.window,
            signature=signature,
            chunk_size=attempt.chunk_size,
        )
        accept = accepted(device, offer)
        assert accept.offset == resume_at
        hypothesis.event("resumed mid-image" if 0 < resume_at < len(image) else "started at 0")
        sender = ImageSender(offer, image)
        assert sender.start(accept)
        link = Link(device, sender, attempt, rnd)
        link.run()
        if link.result is not None or state_of(device) is ReceiverState.DONE:
            assert link.result is None or link.result.status is OtaResult.VERIFIED
            assert state_of(device) is ReceiverState.DONE
            assert bytes(device.flash[: len(image)]) == image
            hypothesis.event(f"completed on attempt {min(number, 3)}{'+' if number >= 3 else ''}")
            return
        hypothesis.event(f"interrupted by {attempt.interruption}")
        assert attempt.interruption != "none", "a transfer without interruption must complete"
        assert state_of(device) is ReceiverState.IDLE
        resume_at = device.receiver.received_until
        assert bytes(device.flash[:resume_at]) == image[:resume_at]
    raise AssertionError("the final attempt did not complete")


# ---------------------------------------------------------------------------- over a real link


def test_transfer_over_an_encrypted_link_with_the_smallest_frames() -> None:
    """A device announcing rx_max_frame = 512 gets 481-byte chunks in full-size frames."""
    pair = handshake(client=new_client(rx_max_frame=limits.MIN_RX_FRAME))
    image = bytes(range(256)) * 20  # 5120 bytes: 10 full chunks and a short one
    offer = build_offer(
        transfer_id=77,
        version=9,
        image=image,
        rx_max_frame=pair.server.peer_rx_max_frame,
        window=4,
        signature=SIGNING_KEY.sign(image),
    )
    assert offer.chunk_size == 481
    device = Device(ImageReceiver(public_key=PUBLIC_KEY, require_signature=True))
    sender = ImageSender(offer, image)

    [got] = deliver(pair.server.send(offer), pair.client)
    assert isinstance(got, OtaOffer) and device.receiver.offer(got) is None
    [accept] = deliver(pair.client.send(device.receiver.accept()), pair.server)
    assert isinstance(accept, OtaAccept) and sender.start(accept)
    complete: Message | None = None
    while complete is None:
        frames = [pair.server.send(c) for c in sender.chunks_to_send()]
        assert all(len(f) - 2 <= limits.MIN_RX_FRAME for f in frames)
        replies: list[Message] = []
        for event in deliver(b"".join(frames), pair.client):
            assert isinstance(event, OtaChunk)
            result = device.take(event)
            if result.ack is not None:
                replies.append(result.ack)
            if state_of(device) is ReceiverState.VERIFYING:
                replies.append(device.receiver.verify(device.read))
        for event in deliver(b"".join(pair.client.send(m) for m in replies), pair.server):
            if isinstance(event, OtaWindowAck):
                sender.on_ack(event)
            else:
                assert isinstance(event, OtaComplete)
                complete = event
    assert complete == OtaComplete(77, OtaResult.VERIFIED, "rebooting into version 9")
    assert bytes(device.flash) == image
