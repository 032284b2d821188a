"""The message vocabulary: frozen dataclasses <-> msgpack.

Over 400 lines, knowingly: the whole vocabulary in one file, in the order of docs/PROTOCOL.md's table.

Every message is one msgpack array `[type, field1, field2, ...]` in the field order declared
below. A receiver ignores items after the fields it knows (room for additive changes within a
protocol version) and fills missing trailing fields that have defaults. Values are checked on
both sides: `encode_message` raises LocalProtocolError, `decode_message` RemoteProtocolError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, TypeVar

import msgpack

from . import limits
from .codes import (
    AckResult,
    CloseReason,
    OtaAbortReason,
    OtaRefusal,
    OtaResult,
    Privilege,
    Status,
    SubscribeResult,
)
from .errors import LocalProtocolError, RemoteProtocolError


class MsgType(IntEnum):
    """Message type numbers. Ranges are reserved by concern so later features slot in."""

    # 0x01-0x0F: session
    HELLO = 0x01
    WELCOME = 0x02
    READY = 0x03
    PING = 0x04
    PONG = 0x05
    STATUS = 0x06
    GOODBYE = 0x07
    # 0x10-0x1F: events (0x16-0x1F reserved)
    PUBLISH = 0x10
    PUBLISH_ACK = 0x11
    SUBSCRIBE = 0x12
    SUBSCRIBE_ACK = 0x13
    UNSUBSCRIBE = 0x14
    EVENT = 0x15
    # 0x20-0x2F: OTA firmware transfer (0x28-0x2F reserved)
    OTA_OFFER = 0x20
    OTA_ACCEPT = 0x21
    OTA_DEFER = 0x22
    OTA_REFUSE = 0x23
    OTA_CHUNK = 0x24
    OTA_WINDOW_ACK = 0x25
    OTA_COMPLETE = 0x26
    OTA_ABORT = 0x27
    # 0x30-0x3F: reserved for claiming


Check = Callable[[Any], Any]


def _brief(v: Any) -> str:
    """A short description of a bad value: never the repr of a container (deep nesting
    would make repr itself fail, and a peer's data does not belong in our errors)."""
    if v is None or type(v) in (bool, int, float):
        return repr(v)
    if type(v) in (str, bytes):
        return f"{type(v).__name__} of length {len(v)}"
    return type(v).__name__


def _uint(lo: int, hi: int) -> Check:
    def check(v: Any) -> int:
        # `type(...) is int` rejects bool, which msgpack decodes separately and Python
        # would otherwise accept as 0/1.
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError(f"expected an integer in {lo}..{hi}, got {_brief(v)}")
        return v

    return check


def _optional(inner: Check) -> Check:
    def check(v: Any) -> Any:
        return None if v is None else inner(v)

    return check


def _bin(lo: int, hi: int) -> Check:
    def check(v: Any) -> bytes:
        if type(v) is not bytes or not lo <= len(v) <= hi:
            raise ValueError(f"expected {lo}..{hi} bytes of binary, got {type(v).__name__}")
        return v

    return check


def _bin_or_view(lo: int, hi: int) -> Check:
    """Like _bin, and on the sending side also a view of bytes (an OTA chunk sliced from the
    image without a copy). Decoding only ever produces bytes."""

    def check(v: Any) -> bytes | memoryview:
        if type(v) is memoryview and v.format == "B" and v.ndim == 1 and lo <= len(v) <= hi:
            return v
        result: bytes = _bin(lo, hi)(v)
        return result

    return check


def _text(lo: int, hi: int) -> Check:
    """UTF-8 text whose encoded length is lo..hi bytes."""

    def check(v: Any) -> str:
        if type(v) is not str or not lo <= len(v.encode()) <= hi:
            raise ValueError(f"expected text of {lo}..{hi} UTF-8 bytes, got {_brief(v)}")
        return v

    return check


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise ValueError(f"expected a boolean, got {_brief(v)}")
    return v


E = TypeVar("E", bound=IntEnum)


def _enum(kind: type[E], exclude: frozenset[E] = frozenset()) -> Check:
    def check(v: Any) -> E:
        if type(v) is not int and not isinstance(v, kind):
            raise ValueError(f"expected a {kind.__name__} code, got {_brief(v)}")
        try:
            code = kind(v)
        except ValueError:
            raise ValueError(f"unknown {kind.__name__} code {v}") from None
        if code in exclude:
            raise ValueError(f"{kind.__name__}.{code.name} is never sent")
        return code

    return check


def _privileges(v: Any) -> Privilege:
    # Unknown bits are dropped rather than refused: a later server may grant privileges this
    # device does not know, and the device must keep working with the ones it does.
    if type(v) is not int and not isinstance(v, Privilege):
        raise ValueError(f"expected privilege flags, got {_brief(v)}")
    if not 0 <= v <= 0xFFFFFFFF:
        raise ValueError(f"privilege flags are a uint32, got {v}")
    return Privilege(v & int(Privilege.all()))


_u16 = _uint(0, 0xFFFF)
_seq = _uint(0, limits.MAX_SEQ)
_product_id = _optional(_uint(1, limits.MAX_PRODUCT_ID))
_rx_frame = _uint(limits.MIN_RX_FRAME, limits.NOISE_MAX_MESSAGE)
_transfer_id = _uint(0, limits.MAX_TRANSFER_ID)
_detail = _text(0, limits.MAX_TEXT_LEN)
_event_name = _text(1, limits.MAX_EVENT_NAME)
_event_data = _bin(0, limits.MAX_EVENT_DATA)
_event_ttl = _uint(0, limits.MAX_EVENT_TTL)
_prefix = _text(0, limits.MAX_SUBSCRIBE_PREFIX)


class Message:
    """Base of every message. Subclasses are frozen, slotted dataclasses."""

    __slots__ = ()
    TYPE: ClassVar[MsgType]
    CHECKS: ClassVar[tuple[Check, ...]]
    _NAMES: ClassVar[tuple[str, ...]]
    _DEFAULTS: ClassVar[tuple[Any, ...]]  # defaults of the trailing optional fields
    _REQUIRED: ClassVar[int]


REGISTRY: dict[int, type[Message]] = {}
M = TypeVar("M", bound=type[Message])


def _register(cls: M) -> M:
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if len(fields) != len(cls.CHECKS):
        raise TypeError(f"{cls.__name__}: one check per field")
    cls._NAMES = tuple(f.name for f in fields)
    cls._DEFAULTS = tuple(f.default for f in fields if f.default is not dataclasses.MISSING)
    cls._REQUIRED = len(fields) - len(cls._DEFAULTS)
    REGISTRY[int(cls.TYPE)] = cls
    return cls


@_register
@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Device -> server, inside handshake message 1."""

    TYPE = MsgType.HELLO
    CHECKS = (
        _bin(limits.DEVICE_ID_LEN, limits.DEVICE_ID_LEN),
        _product_id,
        _uint(0, limits.MAX_FIRMWARE_VERSION),
        _uint(0, limits.MAX_PLATFORM_ID),
        _uint(1, limits.MAX_COUNTER),
        _rx_frame,
        _optional(_text(1, limits.MAX_CLAIM_CODE_LEN)),
    )
    device_id: bytes
    product_id: int | None  # None: development firmware
    firmware_version: int
    platform_id: int
    counter: int  # strictly increasing per device: replay protection
    rx_max_frame: int = limits.NOISE_MAX_MESSAGE  # largest frame the device can receive
    claim_code: str | None = None


@_register
@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """Server -> device, inside handshake message 2."""

    TYPE = MsgType.WELCOME
    CHECKS = (
        _enum(Status),
        _privileges,
        _product_id,
        _uint(1, 3600),
        _uint(1, 3 * 3600),
        _rx_frame,
        _uint(0, 2**63 - 1),
    )
    status: Status
    privileges: Privilege
    product_id: int | None  # the product the status refers to
    heartbeat_interval: int  # seconds between the device's PINGs
    idle_timeout: int  # seconds of silence after which the server closes
    rx_max_frame: int  # largest frame the server accepts
    server_time_ms: int  # Unix time in milliseconds (for devices without a clock)


@_register
@dataclass(frozen=True, slots=True)
class Ready(Message):
    """Device -> server: the first transport message; confirms the session."""

    TYPE = MsgType.READY
    CHECKS = ()


@_register
@dataclass(frozen=True, slots=True)
class Ping(Message):
    TYPE = MsgType.PING
    CHECKS = (_seq,)
    seq: int


@_register
@dataclass(frozen=True, slots=True)
class Pong(Message):
    TYPE = MsgType.PONG
    CHECKS = (_seq,)
    seq: int


@_register
@dataclass(frozen=True, slots=True)
class StatusUpdate(Message):
    """Server -> device: the connection's status or privileges changed."""

    TYPE = MsgType.STATUS
    CHECKS = (_enum(Status), _privileges, _product_id)
    status: Status
    privileges: Privilege
    product_id: int | None


@_register
@dataclass(frozen=True, slots=True)
class Goodbye(Message):
    """Either side: the sender closes the link after this message."""

    TYPE = MsgType.GOODBYE
    # AUTH_FAILED, UNSUPPORTED_VERSION and CONNECTION_LOST are log-only: a refused device sees
    # only the refusal frame, and a lost connection has nobody to tell.
    CHECKS = (
        _enum(
            CloseReason,
            frozenset({CloseReason.AUTH_FAILED, CloseReason.CONNECTION_LOST, CloseReason.UNSUPPORTED_VERSION}),
        ),
        _detail,
    )
    reason: CloseReason
    detail: str = ""


@_register
@dataclass(frozen=True, slots=True)
class Publish(Message):
    """Device -> server: an event."""

    TYPE = MsgType.PUBLISH
    CHECKS = (_seq, _event_name, _event_data, _event_ttl, _bool)
    seq: int
    name: str
    data: bytes = b""
    ttl: int = 60
    private: bool = True


@_register
@dataclass(frozen=True, slots=True)
class PublishAck(Message):
    TYPE = MsgType.PUBLISH_ACK
    CHECKS = (_seq, _enum(AckResult))
    seq: int
    result: AckResult = AckResult.ACCEPTED


# ---------------------------------------------------------------------- subscriptions (0x12-0x15)
# Who receives which event, and what a device does with each result, is in docs/PROTOCOL.md
# section 19; here are only the messages and their field limits.


@_register
@dataclass(frozen=True, slots=True)
class Subscribe(Message):
    """Device -> server: deliver events whose name starts with `prefix` ("" matches every name)."""

    TYPE = MsgType.SUBSCRIBE
    CHECKS = (_seq, _prefix)
    seq: int
    prefix: str


@_register
@dataclass(frozen=True, slots=True)
class SubscribeAck(Message):
    """Server -> device: the outcome of the SUBSCRIBE or UNSUBSCRIBE with this seq."""

    TYPE = MsgType.SUBSCRIBE_ACK
    CHECKS = (_seq, _enum(SubscribeResult))
    seq: int
    result: SubscribeResult = SubscribeResult.ACCEPTED


@_register
@dataclass(frozen=True, slots=True)
class Unsubscribe(Message):
    """Device -> server: stop delivering `prefix` (exactly as subscribed); None drops every prefix."""

    TYPE = MsgType.UNSUBSCRIBE
    CHECKS = (_seq, _optional(_prefix))
    seq: int
    prefix: str | None


@_register
@dataclass(frozen=True, slots=True)
class EventMessage(Message):
    """Server -> device (EVENT): an event matching one of the connection's prefixes. Never answered."""

    TYPE = MsgType.EVENT
    CHECKS = (
        _uint(0, limits.MAX_EVENT_ID),
        _event_name,
        _event_data,
        _uint(0, 2**63 - 1),
        _event_ttl,
        _optional(_bin(limits.DEVICE_ID_LEN, limits.DEVICE_ID_LEN)),
        _bool,
        _uint(0, limits.MAX_SKIPPED),
    )
    event_id: int  # the cloud's ID for the event (the event stream's `id`); increasing
    name: str
    data: bytes
    published_at_ms: int  # Unix time in milliseconds, when the cloud stored it
    ttl: int
    source: bytes | None  # the publishing device's ID; None: the cloud (the API, a webhook's response)
    to_device: bool = False  # addressed to this device alone (a hook response), not a product event
    skipped: int = 0  # matching events dropped for this connection since the previous EVENT (saturates)


def event_fits_frame(rx_max_frame: int, name: str, data: bytes) -> bool:
    """Whether an EVENT with this name and data fits a frame body of `rx_max_frame` bytes,
    whatever its other fields: frame = 16 (tag) + EVENT_FIXED_OVERHEAD + name + data."""
    return limits.TAG_LEN + limits.EVENT_FIXED_OVERHEAD + len(name.encode()) + len(data) <= rx_max_frame


# ---------------------------------------------------------------------------- OTA (0x20-0x2F)
# The transfer rules (who sends what when, resume, windowing) are in docs/PROTOCOL.md and the
# sans-I/O helpers in ota.py; here are only the messages and their field limits.


@_register
@dataclass(frozen=True, slots=True)
class OtaOffer(Message):
    """Server -> device: an image to download. Answered by OTA_ACCEPT, OTA_DEFER or OTA_REFUSE."""

    TYPE = MsgType.OTA_OFFER
    CHECKS = (
        _transfer_id,
        _uint(0, limits.MAX_FIRMWARE_VERSION),
        _uint(1, limits.MAX_OTA_IMAGE_SIZE),
        _bin(limits.OTA_SHA256_LEN, limits.OTA_SHA256_LEN),
        _uint(1, limits.MAX_OTA_CHUNK),
        _uint(1, limits.MAX_OTA_WINDOW),
        _optional(_bin(limits.OTA_SIGNATURE_LEN, limits.OTA_SIGNATURE_LEN)),
        _optional(_uint(0, limits.MAX_PLATFORM_ID)),
        _product_id,
    )
    transfer_id: int  # names the transfer in every later OTA message
    version: int  # the image's product firmware version (what HELLO reports after the reboot)
    size: int  # image length in bytes
    sha256: bytes  # SHA-256 of the whole image
    chunk_size: int  # largest OTA_CHUNK data; at most max_chunk_for_frame(device rx_max_frame)
    window: int  # OTA_CHUNKs the server may have in flight beyond the last OTA_WINDOW_ACK
    signature: bytes | None = None  # Ed25519 over the whole image, or None (unsigned)
    # From the image's header, so a device can refuse (WRONG_PLATFORM, WRONG_PRODUCT) before
    # downloading. None: not said (a server before these fields); the device cannot check up front.
    platform_id: int | None = None
    product_id: int | None = None


@_register
@dataclass(frozen=True, slots=True)
class OtaAccept(Message):
    """Device -> server: send the image from `offset` (the bytes it already has of this sha256)."""

    TYPE = MsgType.OTA_ACCEPT
    CHECKS = (_transfer_id, _uint(0, limits.MAX_OTA_IMAGE_SIZE))
    transfer_id: int
    offset: int  # 0, or the resume point; at most the offer's size


@_register
@dataclass(frozen=True, slots=True)
class OtaDefer(Message):
    """Device -> server: not now; offer again after `retry_after` seconds."""

    TYPE = MsgType.OTA_DEFER
    CHECKS = (_transfer_id, _uint(1, limits.MAX_OTA_RETRY_AFTER))
    transfer_id: int
    retry_after: int  # seconds


@_register
@dataclass(frozen=True, slots=True)
class OtaRefuse(Message):
    """Device -> server: the device will not take this image."""

    TYPE = MsgType.OTA_REFUSE
    CHECKS = (_transfer_id, _enum(OtaRefusal), _detail)
    transfer_id: int
    reason: OtaRefusal
    detail: str = ""


@_register
@dataclass(frozen=True, slots=True)
class OtaChunk(Message):
    """Server -> device: image bytes [offset, offset + len(data)). Never answered one by one."""

    TYPE = MsgType.OTA_CHUNK
    CHECKS = (_transfer_id, _uint(0, limits.MAX_OTA_IMAGE_SIZE - 1), _bin_or_view(1, limits.MAX_OTA_CHUNK))
    transfer_id: int
    offset: int
    data: bytes | memoryview  # 1..chunk_size bytes (a view only on the sender's side)


@_register
@dataclass(frozen=True, slots=True)
class OtaWindowAck(Message):
    """Device -> server: every byte below `received_until` is stored; opens the window."""

    TYPE = MsgType.OTA_WINDOW_ACK
    CHECKS = (_transfer_id, _uint(0, limits.MAX_OTA_IMAGE_SIZE))
    transfer_id: int
    received_until: int


@_register
@dataclass(frozen=True, slots=True)
class OtaComplete(Message):
    """Device -> server: the transfer ended at the device; VERIFIED means it reboots into the image."""

    TYPE = MsgType.OTA_COMPLETE
    CHECKS = (_transfer_id, _enum(OtaResult), _detail)
    transfer_id: int
    status: OtaResult
    detail: str = ""


@_register
@dataclass(frozen=True, slots=True)
class OtaAbort(Message):
    """Server -> device: the transfer is abandoned. The device keeps what it stored (for a resume)."""

    TYPE = MsgType.OTA_ABORT
    CHECKS = (_transfer_id, _enum(OtaAbortReason), _detail)
    transfer_id: int
    reason: OtaAbortReason
    detail: str = ""


def max_chunk_for_frame(rx_max_frame: int) -> int:
    """The largest OTA_CHUNK data that fits a frame body of `rx_max_frame` bytes (the device's
    announced limit), whatever the transfer_id and offset: frame = 16 (tag) + 12 (array header,
    type, uint32 transfer_id, uint32 offset) + bin header + data. Every allowed limit (512 and
    up) leaves more than 255 bytes of data, so the bin header is always the 3-byte bin16."""
    if not limits.MIN_RX_FRAME <= rx_max_frame <= limits.NOISE_MAX_MESSAGE:
        raise LocalProtocolError(
            f"rx_max_frame must be {limits.MIN_RX_FRAME}..{limits.NOISE_MAX_MESSAGE}, got {rx_max_frame}"
        )
    return rx_max_frame - limits.TAG_LEN - limits.OTA_CHUNK_FIXED_OVERHEAD - 3


def encode_message(message: Message) -> bytes:
    values = _values(message)
    try:
        checked = [check(v) for check, v in zip(message.CHECKS, values, strict=True)]
    except ValueError as exc:
        raise LocalProtocolError(f"{type(message).__name__}: {exc}") from exc
    items = [int(message.TYPE)]
    items.extend(int(v) if isinstance(v, IntEnum | Privilege) else v for v in checked)
    out: bytes = msgpack.packb(items, use_bin_type=True)
    return out


def encode_chunk_head(chunk: OtaChunk) -> bytes:
    """OTA_CHUNK's encoding up to its data: encode_message(chunk) == head + chunk.data. A sender
    can then put the data straight into its frame buffer instead of copying it through msgpack."""
    try:
        transfer_id, offset, data = (check(v) for check, v in zip(OtaChunk.CHECKS, _values(chunk), strict=True))
    except ValueError as exc:
        raise LocalProtocolError(f"OtaChunk: {exc}") from exc
    # fixarray of 4, three packed integers, then the bin8 or bin16 header of the data (a chunk
    # never exceeds 65535 bytes: limits.MAX_OTA_CHUNK).
    n = len(data)
    bin_header = bytes((0xC4, n)) if n <= 0xFF else bytes((0xC5, n >> 8, n & 0xFF))
    packed: list[bytes] = [msgpack.packb(v) for v in (int(OtaChunk.TYPE), transfer_id, offset)]
    return b"\x94" + b"".join(packed) + bin_header


def _values(message: Message) -> list[Any]:
    return [getattr(message, name) for name in message._NAMES]


def _nests_too_deep(trailing: list[Any]) -> bool:
    """Whether ignored trailing items hold arrays deeper than the limit allows (the message's
    own array is level 1). Known fields are scalars, so their checks refuse any array."""
    level = [(item, 2) for item in trailing if type(item) is list]
    while level:
        array, depth = level.pop()
        if depth > limits.MSGPACK_MAX_DEPTH:
            return True
        level.extend((item, depth + 1) for item in array if type(item) is list)
    return False


def decode_message(data: bytes) -> Message:
    """Decode one message; anything but a well-formed known message is RemoteProtocolError."""
    try:
        items = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=limits.MSGPACK_MAX_STR,
            max_bin_len=limits.MSGPACK_MAX_BIN,
            max_array_len=limits.MSGPACK_MAX_ARRAY,
            max_map_len=limits.MSGPACK_MAX_MAP,
            max_ext_len=limits.MSGPACK_MAX_EXT,
        )
    except Exception as exc:  # msgpack raises a zoo of types for bad input; all mean the same
        raise RemoteProtocolError(
            f"undecodable msgpack: {type(exc).__name__}: {exc}", CloseReason.MESSAGE_INVALID
        ) from None
    if type(items) is not list or not items or type(items[0]) is not int:
        raise RemoteProtocolError("a message is an array starting with its type", CloseReason.MESSAGE_INVALID)
    cls = REGISTRY.get(items[0])
    if cls is None:
        raise RemoteProtocolError(f"unknown message type {items[0]}", CloseReason.MESSAGE_INVALID)
    values = items[1 : 1 + len(cls.CHECKS)]
    if len(items) > 1 + len(cls.CHECKS) and _nests_too_deep(items[1 + len(cls.CHECKS) :]):
        raise RemoteProtocolError(f"nested deeper than {limits.MSGPACK_MAX_DEPTH} arrays", CloseReason.MESSAGE_INVALID)
    if len(values) < cls._REQUIRED:
        raise RemoteProtocolError(
            f"{cls.__name__} needs {cls._REQUIRED} fields, got {len(values)}", CloseReason.MESSAGE_INVALID
        )
    missing = len(cls.CHECKS) - len(values)
    if missing:
        values.extend(cls._DEFAULTS[len(cls._DEFAULTS) - missing :])
    try:
        checked = [check(v) for check, v in zip(cls.CHECKS, values, strict=True)]
    except ValueError as exc:
        raise RemoteProtocolError(f"{cls.__name__}: {exc}", CloseReason.MESSAGE_INVALID) from None
    return cls(*checked)


def device_id_hex(device_id: bytes) -> str:
    return device_id.hex()


def parse_device_id(text: str) -> bytes:
    """Parse a 24-hex-character device ID (either case); ValueError names the problem."""
    t = text.strip().lower()
    if len(t) != 2 * limits.DEVICE_ID_LEN or any(c not in "0123456789abcdef" for c in t):
        raise ValueError(f"a device ID is {2 * limits.DEVICE_ID_LEN} hex characters, got {text!r:.40}")
    return bytes.fromhex(t)


def parse_public_key(text: str) -> bytes:
    t = text.strip().lower()
    if len(t) != 2 * limits.PUBLIC_KEY_LEN or any(c not in "0123456789abcdef" for c in t):
        raise ValueError(f"a public key is {2 * limits.PUBLIC_KEY_LEN} hex characters, got {text!r:.40}")
    return bytes.fromhex(t)
