"""Subscription messages on the wire (SUBSCRIBE, SUBSCRIBE_ACK, UNSUBSCRIBE, EVENT): field limits
both ways, defaults, the EVENT size bound, documented encodings, and the Connection's direction
and state rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import limits
from protocol.codes import CloseReason, SubscribeResult
from protocol.connection import FROM_DEVICE, FROM_SERVER, State
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.messages import (
    EventMessage,
    Message,
    MsgType,
    Subscribe,
    SubscribeAck,
    Unsubscribe,
    decode_message,
    encode_message,
    event_fits_frame,
)

from .helpers import (
    DEVICE_ID,
    FAST,
    STRATEGIES,
    SUBSCRIPTION_VALID,
    THOROUGH,
    deliver,
    forge,
    forge_plaintext,
    handshake,
    new_client,
    pack,
    state,
    wire_items,
)

VALID = SUBSCRIPTION_VALID
UNKNOWN_RESULT = max(SubscribeResult) + 1
LONG_NAME = "\u00e9" * (limits.MAX_EVENT_NAME // 2)  # 32 characters, 64 bytes


def refused(data: bytes) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(data)
    assert info.value.reason is CloseReason.MESSAGE_INVALID
    return info.value


# ---------------------------------------------------------------------------- field limits

BAD_FIELDS: list[tuple[type[Message], str, Any]] = [
    (Subscribe, "seq", -1),
    (Subscribe, "seq", limits.MAX_SEQ + 1),
    (Subscribe, "seq", True),
    (Subscribe, "prefix", None),  # nil is not "every event": that is ""
    (Subscribe, "prefix", "p" * (limits.MAX_SUBSCRIBE_PREFIX + 1)),
    (Subscribe, "prefix", "\u00e9" * (limits.MAX_SUBSCRIBE_PREFIX // 2 + 1)),  # 33 characters, 66 bytes
    (Subscribe, "prefix", b"temp"),
    (Subscribe, "prefix", 7),
    (SubscribeAck, "seq", limits.MAX_SEQ + 1),
    (SubscribeAck, "result", UNKNOWN_RESULT),
    (SubscribeAck, "result", -1),
    (SubscribeAck, "result", True),
    (SubscribeAck, "result", None),
    (Unsubscribe, "seq", None),
    (Unsubscribe, "prefix", "p" * (limits.MAX_SUBSCRIBE_PREFIX + 1)),
    (Unsubscribe, "prefix", b""),
    (Unsubscribe, "prefix", False),
    (EventMessage, "event_id", -1),
    (EventMessage, "event_id", limits.MAX_EVENT_ID + 1),
    (EventMessage, "event_id", None),
    (EventMessage, "name", ""),
    (EventMessage, "name", "n" * (limits.MAX_EVENT_NAME + 1)),
    (EventMessage, "name", b"temp"),
    (EventMessage, "data", b"d" * (limits.MAX_EVENT_DATA + 1)),
    (EventMessage, "data", "text"),
    (EventMessage, "data", None),
    (EventMessage, "published_at_ms", -1),
    (EventMessage, "published_at_ms", 2**63),
    (EventMessage, "published_at_ms", 1.5),
    (EventMessage, "ttl", -1),
    (EventMessage, "ttl", limits.MAX_EVENT_TTL + 1),
    (EventMessage, "source", DEVICE_ID[:11]),
    (EventMessage, "source", DEVICE_ID + b"\x00"),
    (EventMessage, "source", b""),
    (EventMessage, "source", DEVICE_ID.hex()),  # text, not binary
    (EventMessage, "to_device", 1),
    (EventMessage, "to_device", None),
    (EventMessage, "skipped", -1),
    (EventMessage, "skipped", limits.MAX_SKIPPED + 1),
    (EventMessage, "skipped", False),
]
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
    assert cls.__name__ in str(error)


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (Subscribe, "prefix", ""),
        (Subscribe, "prefix", "p" * limits.MAX_SUBSCRIBE_PREFIX),
        (Subscribe, "prefix", LONG_NAME),
        (Subscribe, "seq", limits.MAX_SEQ),
        (Unsubscribe, "prefix", None),
        (Unsubscribe, "prefix", ""),
        (SubscribeAck, "result", SubscribeResult.NOT_PERMITTED),
        (EventMessage, "event_id", 0),
        (EventMessage, "event_id", limits.MAX_EVENT_ID),
        (EventMessage, "name", LONG_NAME),
        (EventMessage, "data", b""),
        (EventMessage, "data", bytes(limits.MAX_EVENT_DATA)),
        (EventMessage, "published_at_ms", 2**63 - 1),
        (EventMessage, "ttl", limits.MAX_EVENT_TTL),
        (EventMessage, "source", None),
        (EventMessage, "to_device", True),
        (EventMessage, "skipped", limits.MAX_SKIPPED),
    ],
    ids=lambda v: f"{v!r:.20}",
)
def test_boundary_values_are_accepted(cls: type[Message], name: str, value: Any) -> None:
    message = dataclasses.replace(VALID[cls], **{name: value})  # type: ignore[type-var]
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([int(MsgType.SUBSCRIBE_ACK), 4], SubscribeAck(4, SubscribeResult.ACCEPTED)),
        (
            [int(MsgType.EVENT), 1, "temp", b"1", 2, 60, None],
            EventMessage(1, "temp", b"1", 2, 60, None, to_device=False, skipped=0),
        ),
        (
            [int(MsgType.EVENT), 1, "temp", b"1", 2, 60, DEVICE_ID, True],
            EventMessage(1, "temp", b"1", 2, 60, DEVICE_ID, to_device=True, skipped=0),
        ),
        # A later minor version may append fields: ignored.
        ([int(MsgType.SUBSCRIBE), 3, "temp", "later", 1.5], Subscribe(3, "temp")),
        ([int(MsgType.EVENT), 1, "t", b"", 2, 60, None, False, 0, b"x"], EventMessage(1, "t", b"", 2, 60, None)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Message) else "",
)
def test_defaults_and_trailing_items(items: list[Any], expected: Message) -> None:
    assert decode_message(pack(items)) == expected


@pytest.mark.parametrize(
    "items",
    [
        [int(MsgType.SUBSCRIBE), 1],  # the prefix is required: never "everything" by omission
        [int(MsgType.SUBSCRIBE_ACK)],
        [int(MsgType.UNSUBSCRIBE), 1],  # None (every prefix) must be said
        [int(MsgType.EVENT), 1, "temp", b"", 2, 60],
    ],
    ids=repr,
)
def test_missing_required_fields(items: list[Any]) -> None:
    assert "needs" in str(refused(pack(items)))


# ---------------------------------------------------------------------------- EVENT sizing


def _worst_event(name: str, data: bytes) -> EventMessage:
    """An EVENT whose other fields take their longest encodings."""
    return EventMessage(limits.MAX_EVENT_ID, name, data, 2**63 - 1, limits.MAX_EVENT_TTL, DEVICE_ID, True, 2**32 - 1)


def _frame_size(message: Message) -> int:
    return len(encode_message(message)) + limits.TAG_LEN


def test_the_fixed_overhead_is_exact_at_the_worst_case() -> None:
    worst = _worst_event(LONG_NAME, bytes(limits.MAX_EVENT_DATA))
    assert _frame_size(worst) == limits.MIN_RX_FRAME_ALL_EVENTS == 1154
    assert event_fits_frame(limits.MIN_RX_FRAME_ALL_EVENTS, worst.name, worst.data)
    assert not event_fits_frame(limits.MIN_RX_FRAME_ALL_EVENTS - 1, worst.name, worst.data)


@THOROUGH
@given(STRATEGIES[EventMessage], st.integers(limits.MIN_RX_FRAME, limits.NOISE_MAX_MESSAGE))
def test_event_fits_frame_is_a_safe_bound(event: EventMessage, rx_max_frame: int) -> None:
    """Whatever the fields: when the helper says it fits, the frame fits."""
    if event_fits_frame(rx_max_frame, event.name, event.data):
        assert _frame_size(event) <= rx_max_frame
    assert _frame_size(event) <= limits.TAG_LEN + limits.EVENT_FIXED_OVERHEAD + len(event.name.encode()) + len(
        event.data
    )


def test_subscription_control_messages_fit_the_smallest_frame() -> None:
    top = limits.MAX_SEQ
    for message in [
        Subscribe(top, LONG_NAME),
        Unsubscribe(top, LONG_NAME),
        SubscribeAck(top, max(SubscribeResult)),
    ]:
        assert _frame_size(message) <= limits.MIN_RX_FRAME, message
    # ... and an EVENT with up to 512 - 16 - 50 - 64 = 382 bytes of data does too.
    assert _frame_size(_worst_event(LONG_NAME, bytes(382))) == limits.MIN_RX_FRAME


# ---------------------------------------------------------------------------- documented bytes

# The worked examples in docs/PROTOCOL.md section 19.7, byte for byte.
DOC_EXAMPLES: list[tuple[Message, str]] = [
    (Subscribe(5, "temp"), "931205a474656d70"),
    (Subscribe(6, ""), "931206a0"),
    (SubscribeAck(5, SubscribeResult.ACCEPTED), "93130500"),
    (SubscribeAck(7, SubscribeResult.TOO_MANY), "93130701"),
    (SubscribeAck(8, SubscribeResult.NOT_PERMITTED), "93130802"),
    (Unsubscribe(9, "temp"), "931409a474656d70"),
    (Unsubscribe(10, None), "93140ac0"),
    (
        EventMessage(1234, "temp/kitchen", b"21.5", 1_700_000_000_123, 60, bytes.fromhex("e00fce681f2d3c4b5a697887")),
        "9915cd04d2ac74656d702f6b69746368656ec40432312e35cf0000018bcfe5687b3cc40ce00fce681f2d3c4b5a697887c200",
    ),
    (
        EventMessage(1240, "hook-response/weather/0", b"sunny", 1_700_000_005_000, 60, None, True, 2),
        "9915cd04d8b7686f6f6b2d726573706f6e73652f776561746865722f30c40573756e6e79cf0000018bcfe57b883cc0c302",
    ),
]


@pytest.mark.parametrize(("message", "hex_bytes"), DOC_EXAMPLES, ids=lambda v: type(v).__name__)
def test_documented_encodings(message: Message, hex_bytes: str) -> None:
    assert encode_message(message).hex() == hex_bytes
    assert decode_message(bytes.fromhex(hex_bytes)) == message


def test_the_document_quotes_these_bytes() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    section = doc[doc.index("### 19.7 Worked bytes") :].replace(" ", "").replace("\n", "")
    for message, hex_bytes in DOC_EXAMPLES:
        if not isinstance(message, EventMessage):  # events are quoted field by field
            assert hex_bytes in section, message
    for code in SubscribeResult:
        assert f"| {int(code)} | {code.name} |" in doc


# ---------------------------------------------------------------------------- connection rules

DEVICE_SUB: list[Message] = [Subscribe(1, "temp"), Unsubscribe(2, "temp"), Unsubscribe(3, None)]
SERVER_SUB: list[Message] = [
    SubscribeAck(1, SubscribeResult.ACCEPTED),
    EventMessage(9, "temp/x", b"1", 2, 60, DEVICE_ID, False, 0),
]


def _name(message: Message) -> str:
    return type(message).__name__


def test_roles_are_as_documented() -> None:
    assert {type(m) for m in DEVICE_SUB} <= FROM_DEVICE
    assert {type(m) for m in SERVER_SUB} <= FROM_SERVER
    assert not {type(m) for m in DEVICE_SUB} & FROM_SERVER
    assert not {type(m) for m in SERVER_SUB} & FROM_DEVICE


def test_subscription_messages_flow_in_their_directions() -> None:
    pair = handshake()
    for message in DEVICE_SUB:
        assert deliver(pair.client.send(message), pair.server) == [message]
    for message in SERVER_SUB:
        assert deliver(pair.server.send(message), pair.client) == [message]


@pytest.mark.parametrize("message", DEVICE_SUB, ids=_name)
def test_subscribe_before_ready_is_unexpected(message: Message) -> None:
    pair = handshake(ready=False)
    with pytest.raises(LocalProtocolError):
        pair.client.send(message)  # Ready first
    pair.server.receive_data(forge(pair.client, message))
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.reason is CloseReason.UNEXPECTED_MESSAGE
    assert state(pair.server) is State.ERROR


@pytest.mark.parametrize("message", SERVER_SUB, ids=_name)
def test_server_messages_from_the_device_are_unexpected(message: Message) -> None:
    pair = handshake()
    with pytest.raises(LocalProtocolError):
        pair.client.send(message)
    pair.server.receive_data(forge(pair.client, message))
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.reason is CloseReason.UNEXPECTED_MESSAGE


@pytest.mark.parametrize("message", DEVICE_SUB, ids=_name)
def test_device_messages_from_the_server_are_unexpected(message: Message) -> None:
    pair = handshake()
    with pytest.raises(LocalProtocolError):
        pair.server.send(message)
    pair.client.receive_data(forge(pair.server, message))
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.next_event()
    assert info.value.reason is CloseReason.UNEXPECTED_MESSAGE


def test_a_malformed_subscribe_is_message_invalid() -> None:
    pair = handshake()
    too_long = [int(MsgType.SUBSCRIBE), 1, "p" * (limits.MAX_SUBSCRIBE_PREFIX + 1)]
    pair.server.receive_data(forge_plaintext(pair.client, pack(too_long)))
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.reason is CloseReason.MESSAGE_INVALID


@FAST
@given(st.integers(limits.MIN_RX_FRAME, limits.NOISE_MAX_MESSAGE), st.binary(max_size=limits.MAX_EVENT_DATA))
def test_an_event_that_the_helper_accepts_reaches_the_device(rx_max_frame: int, data: bytes) -> None:
    pair = handshake(client=new_client(rx_max_frame=rx_max_frame))
    event = _worst_event(LONG_NAME, data)
    if event_fits_frame(rx_max_frame, event.name, event.data):
        assert deliver(pair.server.send(event), pair.client) == [event]
    else:
        with pytest.raises(LocalProtocolError):
            pair.server.send(event)  # refused before encrypting: the link stays usable
        assert state(pair.server) is State.OPEN
