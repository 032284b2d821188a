"""The message vocabulary: round trips, hostile input, and every field limit enforced both ways."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import limits
from protocol.codes import AckResult, CloseReason, OtaAbortReason, OtaRefusal, OtaResult, Privilege, Status
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.messages import (
    REGISTRY,
    Goodbye,
    Hello,
    Message,
    MsgType,
    OtaAbort,
    OtaAccept,
    OtaChunk,
    OtaComplete,
    OtaDefer,
    OtaOffer,
    OtaRefuse,
    OtaWindowAck,
    Ping,
    Pong,
    Publish,
    PublishAck,
    Ready,
    StatusUpdate,
    Welcome,
    decode_message,
    device_id_hex,
    encode_message,
    parse_device_id,
    parse_public_key,
)

from .helpers import (
    DEVICE_ID,
    FAST,
    LOG_ONLY_REASONS,
    STRATEGIES,
    SUBSCRIPTION_VALID,
    THOROUGH,
    any_message,
    make_hello,
    make_welcome,
    msgpack_values,
    pack,
    wire_items,
)


def refused(data: bytes) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(data)
    assert info.value.reason is CloseReason.MESSAGE_INVALID
    return info.value


# ---------------------------------------------------------------------------- round trips


def test_every_registered_message_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(REGISTRY.values())
    assert {int(t) for t in MsgType} == set(REGISTRY)
    for number, cls in REGISTRY.items():
        assert int(cls.TYPE) == number


MESSAGE_CLASSES: list[type[Message]] = sorted(REGISTRY.values(), key=lambda c: int(c.TYPE))


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=[c.__name__ for c in MESSAGE_CLASSES])
@FAST
@given(data=st.data())
def test_round_trip_each_type(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[cls])
    encoded = encode_message(message)
    decoded = decode_message(encoded)
    assert type(decoded) is cls
    assert decoded == message
    assert encode_message(decoded) == encoded  # canonical: re-encoding gives the same bytes
    items = msgpack.unpackb(encoded, raw=False)
    assert items[0] == int(cls.TYPE)
    assert len(items) == 1 + len(dataclasses.fields(cls))  # type: ignore[arg-type]


@THOROUGH
@given(any_message)
def test_decoded_enums_are_enum_members(message: Message) -> None:
    decoded = decode_message(encode_message(message))
    for field in dataclasses.fields(decoded):  # type: ignore[arg-type]
        value = getattr(decoded, field.name)
        original = getattr(message, field.name)
        assert type(value) is type(original)


@FAST
@given(STRATEGIES[Hello])
def test_any_valid_hello_fits_the_handshake_payload(hello: Hello) -> None:
    assert len(encode_message(hello)) <= limits.HELLO_MAX_PAYLOAD


@FAST
@given(STRATEGIES[Welcome])
def test_any_valid_welcome_fits_the_handshake_payload(welcome: Welcome) -> None:
    assert len(encode_message(welcome)) <= limits.WELCOME_MAX_PAYLOAD


def test_largest_publish_fits_the_default_server_frame() -> None:
    biggest = Publish(
        seq=limits.MAX_SEQ,
        name="\u00e9" * (limits.MAX_EVENT_NAME // 2),
        data=b"\xff" * limits.MAX_EVENT_DATA,
        ttl=limits.MAX_EVENT_TTL,
        private=False,
    )
    assert len(encode_message(biggest)) + limits.TAG_LEN <= limits.SERVER_RX_MAX_FRAME
    assert decode_message(encode_message(biggest)) == biggest


def test_plain_ints_for_enum_fields_encode_like_the_members() -> None:
    as_int = StatusUpdate(status=2, privileges=5, product_id=None)  # type: ignore[arg-type]
    as_enum = StatusUpdate(Status.LIMITED, Privilege.OTA | Privilege.CLAIM, None)
    assert encode_message(as_int) == encode_message(as_enum)
    assert decode_message(encode_message(as_int)) == as_enum


# ---------------------------------------------------------------------------- hostile input


@THOROUGH
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_remote_error(data: bytes) -> None:
    try:
        message = decode_message(data)
    except RemoteProtocolError as exc:
        assert exc.reason is CloseReason.MESSAGE_INVALID
    else:
        assert isinstance(message, Message)
        assert type(message) in REGISTRY.values()


@THOROUGH
@given(
    st.sampled_from(sorted(REGISTRY)) | st.integers(-5, 300),
    st.lists(msgpack_values, max_size=10),
)
def test_arbitrary_arrays_decode_or_raise_remote_error(kind: int, values: list[Any]) -> None:
    """Well-formed msgpack with a plausible type number: reaches the per-field checks."""
    try:
        message = decode_message(pack([kind, *values]))
    except RemoteProtocolError as exc:
        assert exc.reason is CloseReason.MESSAGE_INVALID
    else:
        assert type(message) is REGISTRY[kind]
        # Whatever we accept, we can send back unchanged.
        assert decode_message(encode_message(message)) == message


@FAST
@given(any_message, st.integers(min_value=0), st.integers(0, 255))
def test_corrupted_encoding_decodes_or_raises_remote_error(message: Message, position: int, value: int) -> None:
    data = bytearray(encode_message(message))
    data[position % len(data)] = value
    try:
        decode_message(bytes(data))
    except RemoteProtocolError as exc:
        assert exc.reason is CloseReason.MESSAGE_INVALID


@FAST
@given(any_message, st.integers(min_value=0))
def test_truncated_encoding_is_refused(message: Message, cut: int) -> None:
    data = encode_message(message)
    refused(data[: cut % len(data)])


@pytest.mark.parametrize(
    "items",
    [
        [0x7F],
        [0],
        [-1],
        [0x16, 1],  # reserved in the events range, not yet a message
        [0x1F],
        [0x28, 1],  # reserved in the OTA range, not yet a message
        [0x2F],
        [0x30],  # reserved for claiming
        [2**64 - 1],
    ],
    ids=repr,
)
def test_unknown_message_type(items: list[int]) -> None:
    assert "unknown message type" in str(refused(pack(items)))


@pytest.mark.parametrize(
    "value",
    [
        [],
        [True, 1],  # bool is not a type number
        [4.0, 1],
        ["PING", 1],
        [None],
        [b"\x04", 1],
        [[4], 1],
        4,
        "ping",
        None,
        b"\x04\x01",
    ],
    ids=repr,
)
def test_not_an_array_starting_with_a_type(value: Any) -> None:
    refused(pack(value))


@pytest.mark.parametrize("value", [{}, {"type": 4, "seq": 1}, {4: 1}], ids=repr)
def test_map_instead_of_array(value: dict[Any, Any]) -> None:
    refused(pack(value))


def test_map_inside_a_message_is_refused_by_the_decoder() -> None:
    """MSGPACK_MAX_MAP is 0: even an ignored trailing item may not be a map."""
    refused(pack([int(MsgType.PING), 1, {"a": 1}]))
    assert decode_message(pack([int(MsgType.PING), 1, "a"])) == Ping(1)


def test_empty_input_and_trailing_bytes() -> None:
    refused(b"")
    good = encode_message(Ping(3))
    refused(good + b"\x00")
    refused(good + good)
    assert decode_message(good) == Ping(3)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([int(MsgType.PING), 5, "extra", 7, b"x", None, True], Ping(5)),
        ([int(MsgType.READY), 1, 2, 3], Ready()),
        ([int(MsgType.GOODBYE), 0, "bye", "later"], Goodbye(CloseReason.NORMAL, "bye")),
        (
            [int(MsgType.PUBLISH_ACK), 9, int(AckResult.REJECTED), 1.5],
            PublishAck(9, AckResult.REJECTED),
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Message) else "",
)
def test_trailing_extra_items_are_ignored(items: list[Any], expected: Message) -> None:
    assert decode_message(pack(items)) == expected


def test_up_to_sixteen_items_but_no_more() -> None:
    items: list[Any] = [int(MsgType.PING), 1]
    assert decode_message(pack(items + [0] * (limits.MSGPACK_MAX_ARRAY - 2))) == Ping(1)
    refused(pack(items + [0] * (limits.MSGPACK_MAX_ARRAY - 1)))


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (
            [int(MsgType.PUBLISH), 1, "temp"],
            Publish(1, "temp", data=b"", ttl=60, private=True),
        ),
        ([int(MsgType.PUBLISH), 1, "temp", b"21"], Publish(1, "temp", b"21")),
        ([int(MsgType.PUBLISH), 1, "temp", b"21", 5], Publish(1, "temp", b"21", 5, True)),
        ([int(MsgType.GOODBYE), int(CloseReason.IDLE_TIMEOUT)], Goodbye(CloseReason.IDLE_TIMEOUT, "")),
        ([int(MsgType.PUBLISH_ACK), 4], PublishAck(4, AckResult.ACCEPTED)),
        (
            [int(MsgType.HELLO), DEVICE_ID, None, 1, 2, 3],
            Hello(DEVICE_ID, None, 1, 2, 3, limits.NOISE_MAX_MESSAGE, None),
        ),
        (
            [int(MsgType.HELLO), DEVICE_ID, 5, 1, 2, 3, 512],
            Hello(DEVICE_ID, 5, 1, 2, 3, 512, None),
        ),
        ([int(MsgType.READY)], Ready()),
        (
            [int(MsgType.OTA_OFFER), 1, 2, 3, bytes(32), 4, 5],
            OtaOffer(1, 2, 3, bytes(32), 4, 5, None),
        ),
        (  # a server before platform_id and product_id: the device cannot check them up front
            [int(MsgType.OTA_OFFER), 1, 2, 3, bytes(32), 4, 5, None],
            OtaOffer(1, 2, 3, bytes(32), 4, 5, None, None, None),
        ),
        ([int(MsgType.OTA_REFUSE), 1, int(OtaRefusal.BUSY)], OtaRefuse(1, OtaRefusal.BUSY, "")),
        ([int(MsgType.OTA_COMPLETE), 1, int(OtaResult.VERIFIED)], OtaComplete(1, OtaResult.VERIFIED, "")),
        ([int(MsgType.OTA_ABORT), 1, int(OtaAbortReason.TIMEOUT)], OtaAbort(1, OtaAbortReason.TIMEOUT, "")),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Message) else "",
)
def test_missing_optional_trailing_fields_take_defaults(items: list[Any], expected: Message) -> None:
    decoded = decode_message(pack(items))
    assert decoded == expected


@pytest.mark.parametrize(
    "items",
    [
        [int(MsgType.PING)],
        [int(MsgType.PUBLISH), 1],
        [int(MsgType.GOODBYE)],
        [int(MsgType.PUBLISH_ACK)],
        [int(MsgType.STATUS), 0, 0],
        [int(MsgType.HELLO), DEVICE_ID, None, 1, 2],
        [int(MsgType.WELCOME), 0, 0, None, 30, 90, 4096],
        [int(MsgType.OTA_OFFER), 1, 2, 3, bytes(32), 4],
        [int(MsgType.OTA_ACCEPT), 1],
        [int(MsgType.OTA_DEFER), 1],
        [int(MsgType.OTA_REFUSE), 1],
        [int(MsgType.OTA_CHUNK), 1, 0],
        [int(MsgType.OTA_WINDOW_ACK), 1],
        [int(MsgType.OTA_COMPLETE), 1],
        [int(MsgType.OTA_ABORT), 1],
    ],
    ids=repr,
)
def test_missing_required_fields(items: list[Any]) -> None:
    assert "needs" in str(refused(pack(items)))


def test_explicit_nil_is_not_a_default() -> None:
    """A nil in an optional-with-default slot is a value, checked like any other."""
    refused(pack([int(MsgType.PUBLISH), 1, "temp", None]))
    refused(pack([int(MsgType.HELLO), DEVICE_ID, None, 1, 2, 3, None]))
    # ... but where None is a legal value (claim code, product ID) it is accepted.
    hello = decode_message(pack([int(MsgType.HELLO), DEVICE_ID, None, 1, 2, 3, 512, None]))
    assert hello == Hello(DEVICE_ID, None, 1, 2, 3, 512, None)


# ---------------------------------------------------------------------------- decoder limits


def test_msgpack_str_longer_than_the_decoder_limit_is_refused() -> None:
    """The decoder itself refuses it, even in an ignored trailing slot."""
    ok = [int(MsgType.PING), 1, "x" * limits.MSGPACK_MAX_STR]
    assert decode_message(pack(ok)) == Ping(1)
    error = refused(pack([int(MsgType.PING), 1, "x" * (limits.MSGPACK_MAX_STR + 1)]))
    assert "undecodable msgpack" in str(error)


def test_msgpack_bin_longer_than_the_decoder_limit_is_refused() -> None:
    ok = [int(MsgType.PING), 1, bytes(limits.MSGPACK_MAX_BIN)]
    assert decode_message(pack(ok)) == Ping(1)
    refused(pack([int(MsgType.PING), 1, bytes(limits.MSGPACK_MAX_BIN + 1)]))


@pytest.mark.parametrize(
    "ext",
    [msgpack.ExtType(1, b"x"), msgpack.Timestamp(1, 0), msgpack.ExtType(5, b"")],
    ids=repr,
)
def test_extension_types_are_refused(ext: Any) -> None:
    refused(pack([int(MsgType.PING), ext]))
    if len(ext.data if isinstance(ext, msgpack.ExtType) else ext.to_bytes()) > 0:
        # max_ext_len=0 makes the decoder itself refuse any ext with a body, even in an
        # ignored trailing slot (an empty ext there is tolerated like any ignored item).
        refused(pack([int(MsgType.PING), 1, ext]))


def test_invalid_utf8_is_refused() -> None:
    # fixarray(3) GOODBYE NORMAL fixstr(2) with a lone continuation byte
    refused(b"\x93\x07\x00\xa2\x80\x80")


@pytest.mark.parametrize("depth", [1, 2, 10])
def test_nested_values_are_refused_where_scalars_are_expected(depth: int) -> None:
    nested: Any = 1
    for _ in range(depth):
        nested = [nested]
    refused(pack([int(MsgType.PING), nested]))
    refused(pack([int(MsgType.PUBLISH), 1, "temp", nested]))


def _deep(depth: int, kind: int = int(MsgType.PING)) -> bytes:
    """[kind, [[[ ... 0 ... ]]]] with `depth` nested fixarrays, built by hand."""
    return b"\x92" + bytes([kind]) + b"\x91" * depth + b"\x00"


@pytest.mark.parametrize("depth", [1024, 5000])
def test_very_deep_nesting_is_refused_by_the_decoder(depth: int) -> None:
    refused(_deep(depth))
    # Also in an ignored trailing slot: the decoder refuses it before any check runs.
    refused(b"\x93\x04\x01" + b"\x91" * depth + b"\x00")


def test_deep_nesting_below_the_decoder_stack_limit_is_refused() -> None:
    refused(_deep(1020))


def _trailing(depth: int) -> bytes:
    """[PING, 1, [[...0...]]]: arrays nested `depth` levels deep, the message's own counting as 1."""
    return b"\x93\x04\x01" + b"\x91" * (depth - 1) + b"\x00"


def test_ignored_trailing_arrays_may_nest_up_to_the_limit() -> None:
    assert decode_message(_trailing(limits.MSGPACK_MAX_DEPTH)) == Ping(1)
    wide = pack([int(MsgType.PING), 1, [1, [2, [3]], [4]], [[5]]])  # depth 4 along its deepest path
    assert decode_message(wide) == Ping(1)


@pytest.mark.parametrize("depth", [limits.MSGPACK_MAX_DEPTH + 1, 100, 1020])
def test_ignored_trailing_arrays_nested_past_the_limit_are_refused(depth: int) -> None:
    refused(_trailing(depth))


# ---------------------------------------------------------------------------- field limits

VALID: dict[type[Message], Message] = {
    Hello: make_hello(claim_code="claim-1"),
    Welcome: make_welcome(),
    Ping: Ping(1),
    Pong: Pong(2),
    StatusUpdate: StatusUpdate(Status.LIMITED, Privilege.NONE, 17),
    Goodbye: Goodbye(CloseReason.NORMAL, "bye"),
    Publish: Publish(3, "temp", b"21.5", 60, True),
    PublishAck: PublishAck(3, AckResult.ACCEPTED),
    OtaOffer: OtaOffer(7, 8, 100_000, bytes(range(32)), 993, 16, bytes(64), 6, 4201),
    OtaAccept: OtaAccept(7, 4096),
    OtaDefer: OtaDefer(7, 600),
    OtaRefuse: OtaRefuse(7, OtaRefusal.NO_SPACE, "2 MB free"),
    OtaChunk: OtaChunk(7, 4096, b"image bytes"),
    OtaWindowAck: OtaWindowAck(7, 8192),
    OtaComplete: OtaComplete(7, OtaResult.VERIFIED, "rebooting"),
    OtaAbort: OtaAbort(7, OtaAbortReason.SUPERSEDED, "version 9 released"),
    **SUBSCRIPTION_VALID,
}
UNKNOWN_REFUSAL = max(OtaRefusal) + 1
UNKNOWN_OTA_RESULT = max(OtaResult) + 1
UNKNOWN_ABORT = max(OtaAbortReason) + 1

UNKNOWN_STATUS = max(Status) + 1
UNKNOWN_REASON = max(CloseReason) + 1
UNKNOWN_RESULT = max(AckResult) + 1
UNKNOWN_PRIVILEGE = int(Privilege.all()) + 1

# (message class, field, bad value). Every value here is also representable in msgpack.
BAD_FIELDS: list[tuple[type[Message], str, Any]] = [
    (Hello, "device_id", DEVICE_ID[:11]),
    (Hello, "device_id", DEVICE_ID + b"\x00"),
    (Hello, "device_id", b""),
    (Hello, "device_id", DEVICE_ID.hex()[:12]),  # text, not binary
    (Hello, "device_id", None),
    (Hello, "product_id", 0),
    (Hello, "product_id", -1),
    (Hello, "product_id", limits.MAX_PRODUCT_ID + 1),
    (Hello, "product_id", True),
    (Hello, "product_id", "4242"),
    (Hello, "firmware_version", limits.MAX_FIRMWARE_VERSION + 1),
    (Hello, "firmware_version", -1),
    (Hello, "firmware_version", 1.0),
    (Hello, "firmware_version", True),
    (Hello, "firmware_version", None),
    (Hello, "platform_id", limits.MAX_PLATFORM_ID + 1),
    (Hello, "platform_id", False),
    (Hello, "counter", 0),
    (Hello, "counter", -5),
    (Hello, "counter", True),
    (Hello, "rx_max_frame", limits.MIN_RX_FRAME - 1),
    (Hello, "rx_max_frame", limits.NOISE_MAX_MESSAGE + 1),
    (Hello, "claim_code", ""),
    (Hello, "claim_code", "c" * (limits.MAX_CLAIM_CODE_LEN + 1)),
    (Hello, "claim_code", "\u00e9" * (limits.MAX_CLAIM_CODE_LEN // 2 + 1)),
    (Hello, "claim_code", b"claim"),
    (Welcome, "status", UNKNOWN_STATUS),
    (Welcome, "status", -1),
    (Welcome, "status", True),
    (Welcome, "status", "OK"),
    (Welcome, "privileges", -1),
    (Welcome, "privileges", True),
    (Welcome, "product_id", 0),
    (Welcome, "heartbeat_interval", 0),
    (Welcome, "heartbeat_interval", 3601),
    (Welcome, "idle_timeout", 0),
    (Welcome, "idle_timeout", 3 * 3600 + 1),
    (Welcome, "rx_max_frame", limits.MIN_RX_FRAME - 1),
    (Welcome, "rx_max_frame", limits.NOISE_MAX_MESSAGE + 1),
    (Welcome, "server_time_ms", -1),
    (Welcome, "server_time_ms", 2**63),
    (Ping, "seq", -1),
    (Ping, "seq", limits.MAX_SEQ + 1),
    (Ping, "seq", True),
    (Ping, "seq", None),
    (Ping, "seq", 1.5),
    (Pong, "seq", limits.MAX_SEQ + 1),
    (Pong, "seq", "1"),
    (StatusUpdate, "status", UNKNOWN_STATUS),
    (StatusUpdate, "privileges", None),
    (StatusUpdate, "product_id", limits.MAX_PRODUCT_ID + 1),
    (Goodbye, "reason", UNKNOWN_REASON),
    (Goodbye, "reason", False),
    (Goodbye, "reason", None),
    (Goodbye, "detail", "d" * (limits.MAX_TEXT_LEN + 1)),
    (Goodbye, "detail", b"bytes"),
    (Goodbye, "detail", None),
    (Publish, "seq", limits.MAX_SEQ + 1),
    (Publish, "name", ""),
    (Publish, "name", "n" * (limits.MAX_EVENT_NAME + 1)),
    (Publish, "name", "\u00e9" * (limits.MAX_EVENT_NAME // 2 + 1)),  # 33 chars, 66 bytes
    (Publish, "name", b"temp"),
    (Publish, "data", b"d" * (limits.MAX_EVENT_DATA + 1)),
    (Publish, "data", "text, not binary"),
    (Publish, "data", None),
    (Publish, "ttl", -1),
    (Publish, "ttl", limits.MAX_EVENT_TTL + 1),
    (Publish, "ttl", False),
    (Publish, "private", 1),  # int where a bool is expected
    (Publish, "private", None),
    (PublishAck, "seq", -1),
    (PublishAck, "result", UNKNOWN_RESULT),
    (PublishAck, "result", True),
    (OtaOffer, "transfer_id", -1),
    (OtaOffer, "transfer_id", limits.MAX_TRANSFER_ID + 1),
    (OtaOffer, "transfer_id", None),
    (OtaOffer, "version", limits.MAX_FIRMWARE_VERSION + 1),
    (OtaOffer, "version", True),
    (OtaOffer, "size", 0),
    (OtaOffer, "size", limits.MAX_OTA_IMAGE_SIZE + 1),
    (OtaOffer, "sha256", bytes(31)),
    (OtaOffer, "sha256", bytes(33)),
    (OtaOffer, "sha256", "00" * 32),
    (OtaOffer, "sha256", None),
    (OtaOffer, "chunk_size", 0),
    (OtaOffer, "chunk_size", limits.MAX_OTA_CHUNK + 1),
    (OtaOffer, "window", 0),
    (OtaOffer, "window", limits.MAX_OTA_WINDOW + 1),
    (OtaOffer, "signature", bytes(63)),
    (OtaOffer, "signature", bytes(65)),
    (OtaOffer, "signature", b""),
    (OtaOffer, "signature", "sig"),
    (OtaOffer, "platform_id", -1),
    (OtaOffer, "platform_id", limits.MAX_PLATFORM_ID + 1),
    (OtaOffer, "platform_id", True),
    (OtaOffer, "product_id", 0),
    (OtaOffer, "product_id", limits.MAX_PRODUCT_ID + 1),
    (OtaOffer, "product_id", "42"),
    (OtaAccept, "transfer_id", 1.0),
    (OtaAccept, "offset", -1),
    (OtaAccept, "offset", limits.MAX_OTA_IMAGE_SIZE + 1),
    (OtaAccept, "offset", None),
    (OtaDefer, "retry_after", 0),
    (OtaDefer, "retry_after", limits.MAX_OTA_RETRY_AFTER + 1),
    (OtaRefuse, "reason", UNKNOWN_REFUSAL),
    (OtaRefuse, "reason", -1),
    (OtaRefuse, "reason", None),
    (OtaRefuse, "detail", "d" * (limits.MAX_TEXT_LEN + 1)),
    (OtaRefuse, "detail", None),
    (OtaChunk, "offset", limits.MAX_OTA_IMAGE_SIZE),
    (OtaChunk, "offset", -1),
    (OtaChunk, "data", b""),
    (OtaChunk, "data", bytes(limits.MAX_OTA_CHUNK + 1)),
    (OtaChunk, "data", "text"),
    (OtaChunk, "data", None),
    (OtaWindowAck, "received_until", limits.MAX_OTA_IMAGE_SIZE + 1),
    (OtaWindowAck, "received_until", False),
    (OtaComplete, "status", UNKNOWN_OTA_RESULT),
    (OtaComplete, "status", True),
    (OtaComplete, "detail", b"bytes"),
    (OtaAbort, "reason", UNKNOWN_ABORT),
    (OtaAbort, "reason", "TIMEOUT"),
    (OtaAbort, "detail", "\u00e9" * (limits.MAX_TEXT_LEN // 2 + 1)),
]

# Values the encoder must refuse that msgpack cannot even carry.
UNPACKABLE_BAD_FIELDS: list[tuple[type[Message], str, Any]] = [
    (Hello, "counter", 2**64),
    (Hello, "device_id", bytearray(DEVICE_ID)),
    (Welcome, "server_time_ms", 2**64),
    (Ping, "seq", 2**70),
    (Publish, "name", "\ud800"),  # a lone surrogate has no UTF-8 encoding
    (Publish, "data", memoryview(b"data")),
]

# One above the counter limit: msgpack carries it only while the limit is below 2**64 - 1.
_COUNTER_CASE = (Hello, "counter", limits.MAX_COUNTER + 1)
(BAD_FIELDS if limits.MAX_COUNTER + 1 < 2**64 else UNPACKABLE_BAD_FIELDS).append(_COUNTER_CASE)

CASE_IDS = [f"{cls.__name__}.{name}={value!r:.30}" for cls, name, value in BAD_FIELDS]


@pytest.mark.parametrize(("cls", "name", "value"), BAD_FIELDS, ids=CASE_IDS)
def test_field_limit_enforced_on_encode(cls: type[Message], name: str, value: Any) -> None:
    bad = dataclasses.replace(VALID[cls], **{name: value})  # type: ignore[type-var]
    with pytest.raises(LocalProtocolError) as info:
        encode_message(bad)
    assert cls.__name__ in str(info.value)


@pytest.mark.parametrize(("cls", "name", "value"), BAD_FIELDS, ids=CASE_IDS)
def test_field_limit_enforced_on_decode(cls: type[Message], name: str, value: Any) -> None:
    items = wire_items(VALID[cls])
    index = 1 + [f.name for f in dataclasses.fields(cls)].index(name)  # type: ignore[arg-type]
    items[index] = value
    error = refused(pack(items))
    assert cls.__name__ in str(error) or "undecodable" in str(error)


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    UNPACKABLE_BAD_FIELDS,
    ids=[f"{c.__name__}.{n}" for c, n, _ in UNPACKABLE_BAD_FIELDS],
)
def test_unpackable_values_refused_on_encode(cls: type[Message], name: str, value: Any) -> None:
    bad = dataclasses.replace(VALID[cls], **{name: value})  # type: ignore[type-var]
    with pytest.raises(LocalProtocolError):
        encode_message(bad)


def test_valid_examples_round_trip() -> None:
    assert set(VALID) == set(REGISTRY.values()) - {Ready}
    for message in VALID.values():
        assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (Hello, "device_id", bytes(limits.DEVICE_ID_LEN)),
        (Hello, "product_id", None),
        (Hello, "product_id", 1),
        (Hello, "product_id", limits.MAX_PRODUCT_ID),
        (Hello, "counter", 1),
        (Hello, "counter", limits.MAX_COUNTER),
        (Hello, "rx_max_frame", limits.MIN_RX_FRAME),
        (Hello, "rx_max_frame", limits.NOISE_MAX_MESSAGE),
        (Hello, "claim_code", "c" * limits.MAX_CLAIM_CODE_LEN),
        (Hello, "claim_code", "\u00e9" * (limits.MAX_CLAIM_CODE_LEN // 2)),
        (Welcome, "privileges", Privilege.NONE),
        (Welcome, "heartbeat_interval", 3600),
        (Welcome, "idle_timeout", 3 * 3600),
        (Welcome, "server_time_ms", 2**63 - 1),
        (Ping, "seq", 0),
        (Ping, "seq", limits.MAX_SEQ),
        (Goodbye, "detail", ""),
        (Goodbye, "detail", "d" * limits.MAX_TEXT_LEN),
        (Publish, "name", "n" * limits.MAX_EVENT_NAME),
        (Publish, "name", "\u00e9" * (limits.MAX_EVENT_NAME // 2)),  # 32 chars, 64 bytes
        (Publish, "data", b""),
        (Publish, "data", b"d" * limits.MAX_EVENT_DATA),
        (Publish, "ttl", 0),
        (Publish, "ttl", limits.MAX_EVENT_TTL),
        (Publish, "private", False),
        (OtaOffer, "transfer_id", 0),
        (OtaOffer, "transfer_id", limits.MAX_TRANSFER_ID),
        (OtaOffer, "size", 1),
        (OtaOffer, "size", limits.MAX_OTA_IMAGE_SIZE),
        (OtaOffer, "chunk_size", 1),
        (OtaOffer, "chunk_size", limits.MAX_OTA_CHUNK),
        (OtaOffer, "window", 1),
        (OtaOffer, "window", limits.MAX_OTA_WINDOW),
        (OtaOffer, "signature", None),
        (OtaAccept, "offset", 0),
        (OtaAccept, "offset", limits.MAX_OTA_IMAGE_SIZE),
        (OtaDefer, "retry_after", 1),
        (OtaDefer, "retry_after", limits.MAX_OTA_RETRY_AFTER),
        (OtaChunk, "offset", limits.MAX_OTA_IMAGE_SIZE - 1),
        (OtaChunk, "data", b"x"),
        (OtaChunk, "data", bytes(limits.MAX_OTA_CHUNK)),
        (OtaWindowAck, "received_until", 0),
        (OtaWindowAck, "received_until", limits.MAX_OTA_IMAGE_SIZE),
        (OtaRefuse, "detail", "d" * limits.MAX_TEXT_LEN),
        (OtaComplete, "detail", ""),
    ],
    ids=lambda v: f"{v!r:.20}",
)
def test_boundary_values_are_accepted(cls: type[Message], name: str, value: Any) -> None:
    message = dataclasses.replace(VALID[cls], **{name: value})  # type: ignore[type-var]
    assert decode_message(encode_message(message)) == message


# ---------------------------------------------------------------------------- identifiers


def test_device_id_hex_round_trip() -> None:
    text = device_id_hex(DEVICE_ID)
    assert text == "0123456789abcdef01234567"
    assert parse_device_id(text) == DEVICE_ID
    assert parse_device_id(f"  {text.upper()} ") == DEVICE_ID


@pytest.mark.parametrize(
    "text", ["", "0123456789abcdef0123456", "0123456789abcdef012345678", "g" * 24, "0x" + "0" * 22]
)
def test_parse_device_id_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_device_id(text)


def test_parse_public_key() -> None:
    key = bytes(range(32))
    assert parse_public_key(key.hex().upper()) == key
    with pytest.raises(ValueError):
        parse_public_key(key.hex()[:-1])
    with pytest.raises(ValueError):
        parse_public_key("z" * 64)


@pytest.mark.parametrize("cls", [Welcome, StatusUpdate])
def test_unknown_privilege_bits_are_dropped_on_decode(cls: type[Message]) -> None:
    """A newer server may grant privileges this device does not know; it keeps the ones it does."""
    items = wire_items(make_welcome() if cls is Welcome else StatusUpdate(Status.OK, Privilege.OTA, 7))
    items[2] = int(Privilege.OTA) | UNKNOWN_PRIVILEGE | (1 << 31)
    decoded = decode_message(pack(items))
    assert isinstance(decoded, Welcome | StatusUpdate)
    assert decoded.privileges == Privilege.OTA


@pytest.mark.parametrize("reason", sorted(LOG_ONLY_REASONS))
def test_log_only_close_reasons_are_never_sent(reason: CloseReason) -> None:
    with pytest.raises(LocalProtocolError):
        encode_message(Goodbye(reason))
    refused(pack([int(MsgType.GOODBYE), int(reason), ""]))
