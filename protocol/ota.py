"""OTA firmware transfer, sans-I/O: the device's ImageReceiver and the server's ImageSender.

Over 400 lines, knowingly: both ends of one transfer protocol, so that each rule reads beside its counterpart.

Both take and return message objects (protocol.messages); the caller encodes, writes, stores
and keeps the time. The rules they implement are in docs/PROTOCOL.md section 18:

    server (ImageSender)                       device (ImageReceiver)
    build_offer(): OTA_OFFER --------------->  offer()                  IDLE -> OFFERED
    start()        <-------------------------  accept() / defer() / refuse()
    chunks_to_send(): OTA_CHUNK x window --->  receive_chunk()          RECEIVING
    on_ack()       <-------------------------  OTA_WINDOW_ACK every max(1, window // 2) chunks
    ...                                         (and when the last byte is stored) -> VERIFYING
                   <-------------------------  verify(): OTA_COMPLETE    -> DONE / FAILED
    OTA_ABORT ------------------------------>  abort()                  -> IDLE (bytes kept)

A receiver outlives connections: what it stored of one image (sha256, size) is resumed by the
next offer of that image (OTA_ACCEPT.offset) and discarded when the device accepts another.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import limits
from .codes import CloseReason, OtaRefusal, OtaResult
from .errors import LocalProtocolError, RemoteProtocolError
from .messages import (
    OtaAbort,
    OtaAccept,
    OtaChunk,
    OtaComplete,
    OtaDefer,
    OtaOffer,
    OtaRefuse,
    OtaWindowAck,
    max_chunk_for_frame,
)

__all__ = [
    "ChunkProblem",
    "ChunkResult",
    "ImageReceiver",
    "ImageSender",
    "Reader",
    "ReceiverState",
    "ack_interval",
    "build_offer",
    "max_chunk_for_frame",
    "offer_mismatch",
]

Reader = Callable[[int, int], bytes]
"""`read(offset, length)` returns exactly `length` bytes of the image starting at `offset`."""


def ack_interval(window: int) -> int:
    """Chunks between two OTA_WINDOW_ACKs: half the window (at least 1), so the next ack is on
    its way while the server still has chunks it may send."""
    return max(1, window // 2)


def build_offer(
    *,
    transfer_id: int,
    version: int,
    image: bytes,
    rx_max_frame: int,
    window: int,
    signature: bytes | None = None,
    chunk_size: int | None = None,
    sha256: bytes | None = None,
    platform_id: int | None = None,
    product_id: int | None = None,
) -> OtaOffer:
    """An OTA_OFFER for `image`: its size and sha256, and by default the largest chunk that fits
    the device's announced rx_max_frame. A smaller chunk_size may be asked for, a larger not.

    `sha256`: the image's digest when the caller already knows it (a server that verified the
    image when storing it): hashing the whole image for every device was the offer's main cost.
    It is trusted, not checked; a wrong one fails the transfer at the device (HASH_MISMATCH).

    `platform_id`, `product_id`: from the image's header, so the device can refuse an image it
    cannot run before downloading it (offer_mismatch). A server should always give them."""
    largest = max_chunk_for_frame(rx_max_frame)
    if chunk_size is None:
        chunk_size = largest
    elif not 1 <= chunk_size <= largest:
        raise LocalProtocolError(f"chunk_size {chunk_size} is outside 1..{largest} for rx_max_frame {rx_max_frame}")
    if sha256 is None:
        sha256 = hashlib.sha256(image).digest()
    elif len(sha256) != hashlib.sha256().digest_size:
        raise LocalProtocolError(f"sha256 must be {hashlib.sha256().digest_size} bytes, got {len(sha256)}")
    return OtaOffer(
        transfer_id=transfer_id,
        version=version,
        size=len(image),
        sha256=sha256,
        chunk_size=chunk_size,
        window=window,
        signature=signature,
        platform_id=platform_id,
        product_id=product_id,
    )


def offer_mismatch(offer: OtaOffer, platform_id: int, product_id: int | None) -> OtaRefuse | None:
    """The refusal a device on `platform_id` running `product_id`'s firmware sends for an offer
    built for another platform or product, or None. Platform first: an image for other hardware
    cannot run whatever its product. A field the offer leaves out (None) is not checked, nor the
    product of development firmware (product_id None: it is never offered anything)."""
    if offer.platform_id is not None and offer.platform_id != platform_id:
        detail = f"the image is built for platform {offer.platform_id}; this device is platform {platform_id}"
        return OtaRefuse(offer.transfer_id, OtaRefusal.WRONG_PLATFORM, _clip(detail))
    if offer.product_id is not None and product_id is not None and offer.product_id != product_id:
        detail = f"the image belongs to product {offer.product_id}; this device runs product {product_id}"
        return OtaRefuse(offer.transfer_id, OtaRefusal.WRONG_PRODUCT, _clip(detail))
    return None


def _clip(text: str) -> str:
    """At most MAX_TEXT_LEN bytes of UTF-8, cut on a character boundary."""
    return text.encode()[: limits.MAX_TEXT_LEN].decode(errors="ignore")


# ---------------------------------------------------------------------------- device side


class ReceiverState(Enum):
    IDLE = "idle"  # no transfer (the start, and after defer, refuse, abort or a dropped link)
    OFFERED = "offered"  # an offer awaits the device's answer
    RECEIVING = "receiving"  # accepted: chunks arrive
    VERIFYING = "verifying"  # every byte is in; verify() next
    DONE = "done"  # verified: the device reboots into the image
    FAILED = "failed"  # the device reported a failure in OTA_COMPLETE


_ACTIVE: Final = frozenset({ReceiverState.OFFERED, ReceiverState.RECEIVING, ReceiverState.VERIFYING})


class ChunkProblem(Enum):
    """Why receive_chunk() did not take a chunk. Only STALE is harmless; every other problem
    fails the transfer with OTA_COMPLETE(BAD_CHUNK) (ChunkResult.complete)."""

    STALE = "stale"  # for the transfer that just failed here: it was in flight; ignore it
    WRONG_TRANSFER = "wrong_transfer"  # another transfer_id than the one being received
    TOO_LONG = "too_long"  # more data than the offer's chunk_size
    BEYOND_SIZE = "beyond_size"  # ends past the offer's size
    OVERLAP = "overlap"  # starts below received_until (bytes already stored)
    GAP = "gap"  # starts above received_until (bytes skipped)


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What to do with a chunk: if `store`, write chunk.data at chunk.offset and then send `ack`
    (if any; a failed write calls write_failed() instead). If `complete`, send it: the transfer
    failed. When the receiver's state becomes VERIFYING, call verify()."""

    store: bool
    ack: OtaWindowAck | None = None
    problem: ChunkProblem | None = None
    complete: OtaComplete | None = None


class _Stored:
    """The contiguous prefix the device holds of one image, with the running SHA-256 over it."""

    __slots__ = ("hasher", "received_until", "sha256", "size", "undo")

    def __init__(self, sha256: bytes, size: int) -> None:
        self.sha256 = sha256
        self.size = size
        self.received_until = 0
        self.hasher = hashlib.sha256()
        self.undo: tuple[int, hashlib._Hash] | None = None  # before the last chunk, for a failed write


class ImageReceiver:
    """The device's side of a transfer. Keep one per device for its whole uptime (it is the
    resume state); feed it every OTA message the server sends.

    `public_key`: the Ed25519 key images are signed with; with it, an offer's signature is
    checked by verify(). `require_signature`: unsigned offers are refused (needs the key).
    """

    __slots__ = ("_offer", "_since_ack", "_state", "_stored", "public_key", "require_signature")

    def __init__(self, *, public_key: Ed25519PublicKey | None = None, require_signature: bool = False) -> None:
        if require_signature and public_key is None:
            raise LocalProtocolError("require_signature needs the public key to check with")
        self.public_key = public_key
        self.require_signature = require_signature
        self._state = ReceiverState.IDLE
        self._offer: OtaOffer | None = None
        self._stored: _Stored | None = None
        self._since_ack = 0

    @property
    def state(self) -> ReceiverState:
        return self._state

    @property
    def current_offer(self) -> OtaOffer | None:
        """The current (or last) offer."""
        return self._offer

    @property
    def received_until(self) -> int:
        """Bytes stored of the current offer's image (0 if it is not the stored one)."""
        offer, stored = self._offer, self._stored
        if offer is None or stored is None or (stored.sha256, stored.size) != (offer.sha256, offer.size):
            return 0
        return stored.received_until

    def offer(
        self, offer: OtaOffer, *, platform_id: int | None = None, product_id: int | None = None
    ) -> OtaRefuse | None:
        """Take an OTA_OFFER. Returns the refusal to send when the rules already decide (the
        image is for another platform or product than the device's `platform_id` and
        `product_id`, when given; a signature is required and missing); otherwise None: answer
        with accept(), defer() or refuse(). An offer while another transfer is active is a
        server fault (close)."""
        if self._state in _ACTIVE:
            assert self._offer is not None
            raise RemoteProtocolError(
                f"OtaOffer {offer.transfer_id} while transfer {self._offer.transfer_id} is {self._state.value}",
                CloseReason.UNEXPECTED_MESSAGE,
            )
        self._offer = offer
        self._state = ReceiverState.OFFERED
        if platform_id is not None and (wrong := offer_mismatch(offer, platform_id, product_id)) is not None:
            return self.refuse(wrong.reason, wrong.detail)
        if self.require_signature and offer.signature is None:
            return self.refuse(OtaRefusal.BAD_SIGNATURE, "this device installs signed images only")
        return None

    def accept(self) -> OtaAccept:
        """Accept the offer, resuming after the bytes already stored of the same image. Accepting
        a different image discards what was stored."""
        offer = self._answering()
        stored = self._stored
        if stored is None or (stored.sha256, stored.size) != (offer.sha256, offer.size):
            stored = self._stored = _Stored(offer.sha256, offer.size)
        stored.undo = None
        self._since_ack = 0
        done = stored.received_until == offer.size
        self._state = ReceiverState.VERIFYING if done else ReceiverState.RECEIVING
        return OtaAccept(offer.transfer_id, stored.received_until)

    def defer(self, retry_after: int) -> OtaDefer:
        offer = self._answering()
        self._state = ReceiverState.IDLE
        return OtaDefer(offer.transfer_id, retry_after)

    def refuse(self, reason: OtaRefusal, detail: str = "") -> OtaRefuse:
        offer = self._answering()
        self._state = ReceiverState.IDLE
        return OtaRefuse(offer.transfer_id, reason, detail)

    def _answering(self) -> OtaOffer:
        if self._state is not ReceiverState.OFFERED or self._offer is None:
            raise LocalProtocolError(f"no offer to answer (state {self._state.value})")
        return self._offer

    def receive_chunk(self, chunk: OtaChunk) -> ChunkResult:
        """Check a chunk against the transfer rules and account for it (see ChunkResult). A chunk
        while no transfer is receiving (nothing offered, not yet accepted, after an abort) is a
        server fault (close)."""
        offer, stored = self._offer, self._stored
        if offer is not None and chunk.transfer_id == offer.transfer_id and self._state is ReceiverState.FAILED:
            return ChunkResult(store=False, problem=ChunkProblem.STALE)
        if self._state not in (ReceiverState.RECEIVING, ReceiverState.VERIFYING):
            raise RemoteProtocolError(
                f"OtaChunk for transfer {chunk.transfer_id} while no transfer is receiving ({self._state.value})",
                CloseReason.UNEXPECTED_MESSAGE,
            )
        assert offer is not None and stored is not None
        end = chunk.offset + len(chunk.data)
        if chunk.transfer_id != offer.transfer_id:
            problem = ChunkProblem.WRONG_TRANSFER
        elif len(chunk.data) > offer.chunk_size:
            problem = ChunkProblem.TOO_LONG
        elif end > offer.size:
            problem = ChunkProblem.BEYOND_SIZE
        elif chunk.offset < stored.received_until:
            problem = ChunkProblem.OVERLAP
        elif chunk.offset > stored.received_until:
            problem = ChunkProblem.GAP
        else:
            return self._take(offer, stored, chunk, end)
        detail = f"{problem.value}: transfer {chunk.transfer_id} bytes {chunk.offset}..{end}"
        detail += f" (expected {stored.received_until}, size {offer.size})"
        return ChunkResult(store=False, problem=problem, complete=self._fail(OtaResult.BAD_CHUNK, detail))

    def _take(self, offer: OtaOffer, stored: _Stored, chunk: OtaChunk, end: int) -> ChunkResult:
        stored.undo = (stored.received_until, stored.hasher.copy())
        stored.hasher.update(chunk.data)
        stored.received_until = end
        self._since_ack += 1
        ack = None
        if end == offer.size or self._since_ack >= ack_interval(offer.window):
            ack = OtaWindowAck(offer.transfer_id, end)
            self._since_ack = 0
        if end == offer.size:
            self._state = ReceiverState.VERIFYING
        return ChunkResult(store=True, ack=ack)

    def write_failed(self, detail: str = "") -> OtaComplete:
        """The chunk from the last receive_chunk() could not be stored: it is forgotten (the
        bytes before it stay for a resume) and the transfer fails with WRITE_FAILED."""
        if self._state not in (ReceiverState.RECEIVING, ReceiverState.VERIFYING):
            raise LocalProtocolError(f"no transfer to fail (state {self._state.value})")
        stored = self._stored
        assert stored is not None
        if stored.undo is not None:
            stored.received_until, stored.hasher = stored.undo
        return self._fail(OtaResult.WRITE_FAILED, detail)

    def verify(self, read: Reader | None = None) -> OtaComplete:
        """Check the received image: its running sha256, the stored copy's sha256 when `read`
        is given, and the Ed25519 signature when the device has a key and the offer has a
        signature (or one is required; checking it needs `read`). A mismatch discards the
        stored bytes."""
        if self._state is not ReceiverState.VERIFYING:
            raise LocalProtocolError(f"nothing to verify (state {self._state.value})")
        offer, stored = self._offer, self._stored
        assert offer is not None and stored is not None
        if stored.hasher.digest() != offer.sha256:
            return self._reject(OtaResult.HASH_MISMATCH, "received bytes do not match the offered sha256")
        image = None
        if read is not None:
            image = read(0, offer.size)
            if len(image) != offer.size:
                raise LocalProtocolError(f"read returned {len(image)} bytes, the image has {offer.size}")
            if hashlib.sha256(image).digest() != offer.sha256:
                return self._reject(OtaResult.HASH_MISMATCH, "stored image does not match the offered sha256")
        key = self.public_key
        if key is not None and (offer.signature is not None or self.require_signature):
            if offer.signature is None:
                return self._reject(OtaResult.SIGNATURE_INVALID, "the image is unsigned; a signature is required")
            if image is None:
                raise LocalProtocolError("checking the signature needs the stored image: pass read")
            try:
                key.verify(offer.signature, image)
            except InvalidSignature:
                return self._reject(OtaResult.SIGNATURE_INVALID, "the signature does not match the image")
        self._state = ReceiverState.DONE
        return OtaComplete(offer.transfer_id, OtaResult.VERIFIED, f"rebooting into version {offer.version}")

    def _reject(self, status: OtaResult, detail: str) -> OtaComplete:
        self._stored = None  # bad bytes are never resumed
        return self._fail(status, detail)

    def _fail(self, status: OtaResult, detail: str) -> OtaComplete:
        assert self._offer is not None
        self._state = ReceiverState.FAILED
        return OtaComplete(self._offer.transfer_id, status, _clip(detail))

    def abort(self, message: OtaAbort) -> bool:
        """Take an OTA_ABORT: True if it ended the active transfer (stored bytes are kept for a
        resume); False if it names a transfer that already ended here (it crossed our answer or
        completion): ignore it."""
        offer = self._offer
        if self._state in _ACTIVE and offer is not None and message.transfer_id == offer.transfer_id:
            self._state = ReceiverState.IDLE
            return True
        return False

    def connection_lost(self) -> None:
        """The link dropped: an active transfer ends, the stored bytes stay for a resume."""
        if self._state in _ACTIVE:
            self._state = ReceiverState.IDLE


# ---------------------------------------------------------------------------- server side


class ImageSender:
    """The server's side of one accepted transfer: which chunks may go out now.

    `image` is the whole image or a Reader. Call start() with the device's OTA_ACCEPT, then
    send what chunks_to_send() returns whenever it returns something (after start and after
    each on_ack). Finished when `done` and the device's OTA_COMPLETE has arrived.
    """

    __slots__ = ("_acked", "_in_flight", "_next", "_read", "offer")

    def __init__(self, offer: OtaOffer, image: bytes | Reader) -> None:
        self._read: Callable[[int, int], bytes | memoryview]
        if isinstance(image, bytes):
            if len(image) != offer.size:
                raise LocalProtocolError(f"the image has {len(image)} bytes, the offer says {offer.size}")
            view = memoryview(image)  # chunks are views of the image: no copy until the frame is sealed
            self._read = lambda offset, length: view[offset : offset + length]
        else:
            self._read = image
        self.offer = offer
        self._acked: int | None = None  # the device's received_until; None before start()
        self._next = 0  # offset of the next chunk to send
        self._in_flight: deque[int] = deque()  # end offsets of chunks sent but not acknowledged

    @property
    def started(self) -> bool:
        return self._acked is not None

    @property
    def received_until(self) -> int:
        """What the device has acknowledged (its accept offset at first)."""
        return self._acked or 0

    @property
    def in_flight(self) -> int:
        """Chunks sent whose bytes the device has not acknowledged yet (never above the window)."""
        return len(self._in_flight)

    @property
    def done(self) -> bool:
        """The device has acknowledged every byte; what remains is its OTA_COMPLETE."""
        return self._acked == self.offer.size

    def start(self, accept: OtaAccept) -> bool:
        """Take the device's OTA_ACCEPT. False: it answers another (earlier) offer; ignore it."""
        if accept.transfer_id != self.offer.transfer_id:
            return False
        if self._acked is not None:
            raise RemoteProtocolError(
                f"second OtaAccept for transfer {accept.transfer_id}", CloseReason.UNEXPECTED_MESSAGE
            )
        if accept.offset > self.offer.size:
            raise RemoteProtocolError(
                f"OtaAccept.offset {accept.offset} is beyond the image size {self.offer.size}",
                CloseReason.MESSAGE_INVALID,
            )
        self._acked = self._next = accept.offset
        return True

    def on_ack(self, ack: OtaWindowAck) -> bool:
        """Take an OTA_WINDOW_ACK. False: it belongs to another (earlier) transfer; ignore it."""
        if ack.transfer_id != self.offer.transfer_id:
            return False
        acked = self._acked
        if acked is None:
            raise RemoteProtocolError("OtaWindowAck before OtaAccept", CloseReason.UNEXPECTED_MESSAGE)
        if not acked <= ack.received_until <= self._next:
            raise RemoteProtocolError(
                f"OtaWindowAck.received_until {ack.received_until} outside {acked}..{self._next} (acked..sent)",
                CloseReason.MESSAGE_INVALID,
            )
        self._acked = ack.received_until
        while self._in_flight and self._in_flight[0] <= ack.received_until:
            self._in_flight.popleft()
        return True

    def chunks_to_send(self) -> list[OtaChunk]:
        """The chunks the window allows now, in order; the caller sends all of them."""
        if self._acked is None:
            raise LocalProtocolError("no chunks before the device's OtaAccept")
        offer = self.offer
        out: list[OtaChunk] = []
        while len(self._in_flight) < offer.window and self._next < offer.size:
            length = min(offer.chunk_size, offer.size - self._next)
            data = self._read(self._next, length)
            if len(data) != length:
                raise LocalProtocolError(f"read returned {len(data)} bytes at {self._next}, expected {length}")
            out.append(OtaChunk(offer.transfer_id, self._next, data))
            self._next += length
            self._in_flight.append(self._next)
        return out
