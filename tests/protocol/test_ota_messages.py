"""OTA messages on the wire: chunk sizing, sizes against frame limits, documented encodings,
and the direction rules of the Connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import limits
from protocol.codes import CloseReason, OtaAbortReason, OtaRefusal, OtaResult
from protocol.connection import FROM_DEVICE, FROM_SERVER, State
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
    encode_chunk_head,
    encode_message,
    max_chunk_for_frame,
)

from .helpers import (
    FAST,
    THOROUGH,
    deliver,
    forge,
    handshake,
    new_client,
    new_server,
    state,
)

SHA = bytes(range(32))
SIG = bytes(range(64))


def _worst_chunk(n: int) -> OtaChunk:
    """A chunk of n bytes whose transfer_id and offset take their longest encodings."""
    return OtaChunk(limits.MAX_TRANSFER_ID, limits.MAX_OTA_IMAGE_SIZE - 1, b"\xff" * n)


def _frame_size(message: Message) -> int:
    return len(encode_message(message)) + limits.TAG_LEN


# ---------------------------------------------------------------------------- chunk sizing


@pytest.mark.parametrize(
    ("rx_max_frame", "chunk"),
    [(512, 481), (1024, 993), (2048, 2017), (4096, 4065), (16384, 16353), (65535, 65504)],
)
def test_max_chunk_for_frame_table(rx_max_frame: int, chunk: int) -> None:
    """The table in docs/PROTOCOL.md section 18."""
    assert max_chunk_for_frame(rx_max_frame) == chunk
    assert _frame_size(_worst_chunk(chunk)) == rx_max_frame


def test_max_chunk_for_the_largest_frame_is_the_field_limit() -> None:
    assert max_chunk_for_frame(limits.NOISE_MAX_MESSAGE) == limits.MAX_OTA_CHUNK
    assert limits.MAX_OTA_CHUNK <= limits.MSGPACK_MAX_BIN


@THOROUGH
@given(st.integers(limits.MIN_RX_FRAME, limits.NOISE_MAX_MESSAGE))
def test_largest_chunk_fills_the_frame_exactly(rx_max_frame: int) -> None:
    """Fits at the worst case, and one more byte would not: the helper is exact."""
    n = max_chunk_for_frame(rx_max_frame)
    assert _frame_size(_worst_chunk(n)) == rx_max_frame


@THOROUGH
@given(
    st.integers(0, limits.MAX_TRANSFER_ID),
    st.integers(0, limits.MAX_OTA_IMAGE_SIZE - 1),
    st.one_of(st.integers(1, 300), st.sampled_from([255, 256, 65535 - 300, limits.MAX_OTA_CHUNK])),
)
def test_chunk_head_is_the_encoding_up_to_the_data(transfer_id: int, offset: int, n: int) -> None:
    data = bytes(i % 251 for i in range(n))
    chunk = OtaChunk(transfer_id, offset, data)
    assert encode_chunk_head(chunk) + data == encode_message(chunk)
    view = OtaChunk(transfer_id, offset, memoryview(b"." + data)[1:])  # as ImageSender slices it
    assert encode_message(view) == encode_message(chunk)


@pytest.mark.parametrize(
    "chunk",
    [
        OtaChunk(limits.MAX_TRANSFER_ID + 1, 0, b"x"),
        OtaChunk(1, limits.MAX_OTA_IMAGE_SIZE, b"x"),
        OtaChunk(1, 0, b""),
        OtaChunk(1, 0, b"x" * (limits.MAX_OTA_CHUNK + 1)),
        OtaChunk(1, 0, memoryview(bytes(8)).cast("I")),  # a view, but not of bytes one by one
        OtaChunk(1, 0, bytearray(b"x")),  # type: ignore[arg-type]
    ],
    ids=["transfer_id", "offset", "empty", "too_long", "int_view", "bytearray"],
)
def test_chunk_head_checks_like_encode_message(chunk: OtaChunk) -> None:
    with pytest.raises(LocalProtocolError):
        encode_chunk_head(chunk)
    with pytest.raises(LocalProtocolError):
        encode_message(chunk)


@pytest.mark.parametrize("rx_max_frame", [0, limits.MIN_RX_FRAME - 1, limits.NOISE_MAX_MESSAGE + 1])
def test_max_chunk_for_frame_refuses_impossible_limits(rx_max_frame: int) -> None:
    with pytest.raises(LocalProtocolError):
        max_chunk_for_frame(rx_max_frame)


def test_ota_control_messages_fit_the_smallest_frame() -> None:
    """Everything but OTA_CHUNK fits MIN_RX_FRAME at its largest, in both directions."""
    text = "\u00e9" * (limits.MAX_TEXT_LEN // 2)
    top = limits.MAX_TRANSFER_ID
    largest: list[Message] = [
        OtaOffer(
            top,
            limits.MAX_FIRMWARE_VERSION,
            limits.MAX_OTA_IMAGE_SIZE,
            SHA,
            limits.MAX_OTA_CHUNK,
            limits.MAX_OTA_WINDOW,
            SIG,
            limits.MAX_PLATFORM_ID,
            limits.MAX_PRODUCT_ID,
        ),
        OtaAccept(top, limits.MAX_OTA_IMAGE_SIZE),
        OtaDefer(top, limits.MAX_OTA_RETRY_AFTER),
        OtaRefuse(top, max(OtaRefusal), text),
        OtaWindowAck(top, limits.MAX_OTA_IMAGE_SIZE),
        OtaComplete(top, max(OtaResult), text),
        OtaAbort(top, max(OtaAbortReason), text),
    ]
    for message in largest:
        assert _frame_size(message) <= limits.MIN_RX_FRAME, message


# ---------------------------------------------------------------------------- documented bytes

# The worked examples in docs/PROTOCOL.md section 18.6, byte for byte.
DOC_EXAMPLES: list[tuple[Message, str]] = [
    (
        OtaOffer(7, 8, 5000, bytes.fromhex("aa" * 32), 481, 8, None, 6, 4201),
        "9a200708cd1388c420" + "aa" * 32 + "cd01e108c006cd1069",
    ),
    (OtaAccept(7, 0), "93210700"),
    (OtaAccept(7, 2886), "932107cd0b46"),
    (OtaDefer(7, 600), "932207cd0258"),
    (OtaRefuse(7, OtaRefusal.NO_SPACE, ""), "94230700a0"),
    (OtaChunk(7, 4810, b"\x01\x02\x03"), "942407cd12cac403010203"),
    (OtaWindowAck(7, 1924), "932507cd0784"),
    (OtaComplete(7, OtaResult.VERIFIED, ""), "94260700a0"),
    (OtaAbort(7, OtaAbortReason.ROLLOUT_PAUSED, ""), "94270702a0"),
]


@pytest.mark.parametrize(("message", "hex_bytes"), DOC_EXAMPLES, ids=lambda v: type(v).__name__)
def test_documented_encodings(message: Message, hex_bytes: str) -> None:
    assert encode_message(message).hex() == hex_bytes
    assert decode_message(bytes.fromhex(hex_bytes)) == message


def test_the_document_quotes_these_bytes() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    section = doc[doc.index("### 18.11 Worked bytes") :].replace(" ", "")
    for message, hex_bytes in DOC_EXAMPLES:
        if not isinstance(message, OtaOffer):  # the offer is quoted field by field
            assert hex_bytes in section, message


# ---------------------------------------------------------------------------- connection rules

DEVICE_OTA: list[Message] = [
    OtaAccept(1, 0),
    OtaDefer(1, 60),
    OtaRefuse(1, OtaRefusal.BUSY),
    OtaWindowAck(1, 10),
    OtaComplete(1, OtaResult.VERIFIED),
]
SERVER_OTA: list[Message] = [
    OtaOffer(1, 2, 10, SHA, 10, 4, None),
    OtaChunk(1, 0, b"0123456789"),
    OtaAbort(1, OtaAbortReason.TIMEOUT),
]


def _name(message: Message) -> str:
    return type(message).__name__


def test_ota_messages_flow_in_their_directions() -> None:
    pair = handshake()
    for message in SERVER_OTA:
        assert deliver(pair.server.send(message), pair.client) == [message]
    for message in DEVICE_OTA:
        assert deliver(pair.client.send(message), pair.server) == [message]


@pytest.mark.parametrize("message", DEVICE_OTA, ids=_name)
def test_device_ota_message_from_the_server(message: Message) -> None:
    pair = handshake()
    with pytest.raises(LocalProtocolError):
        pair.server.send(message)
    assert state(pair.server) is State.OPEN
    pair.client.receive_data(forge(pair.server, message))
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.next_event()
    assert info.value.reason is CloseReason.UNEXPECTED_MESSAGE


@pytest.mark.parametrize("message", SERVER_OTA, ids=_name)
def test_server_ota_message_from_the_device(message: Message) -> None:
    pair = handshake()
    with pytest.raises(LocalProtocolError):
        pair.client.send(message)
    assert state(pair.client) is State.OPEN
    pair.server.receive_data(forge(pair.client, message))
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.next_event()
    assert info.value.reason is CloseReason.UNEXPECTED_MESSAGE


@pytest.mark.parametrize("message", [*SERVER_OTA, *DEVICE_OTA], ids=_name)
def test_no_ota_before_ready(message: Message) -> None:
    pair = handshake(ready=False)
    sender, receiver = (pair.server, pair.client) if message in SERVER_OTA else (pair.client, pair.server)
    with pytest.raises(LocalProtocolError):
        sender.send(message)
    if sender is pair.client:  # the server refuses anything but Ready first
        receiver.receive_data(forge(sender, message))
        with pytest.raises(RemoteProtocolError) as info:
            receiver.next_event()
        assert info.value.reason is CloseReason.UNEXPECTED_MESSAGE


def test_offer_chunk_size_must_fit_the_device_frame() -> None:
    pair = handshake(client=new_client(rx_max_frame=limits.MIN_RX_FRAME))
    largest = max_chunk_for_frame(limits.MIN_RX_FRAME)
    fits = OtaOffer(1, 2, 100_000, SHA, largest, 8, SIG)
    assert deliver(pair.server.send(fits), pair.client) == [fits]
    # The largest chunk it allows, with the longest transfer_id and offset, reaches the device.
    chunk = _worst_chunk(largest)
    assert deliver(pair.server.send(chunk), pair.client) == [chunk]

    too_big = OtaOffer(1, 2, 100_000, SHA, largest + 1, 8, SIG)
    with pytest.raises(LocalProtocolError):
        pair.server.send(too_big)
    with pytest.raises(LocalProtocolError):
        pair.server.send(_worst_chunk(largest + 1))  # the frame limit itself
    assert state(pair.server) is State.OPEN
    pair.client.receive_data(forge(pair.server, too_big))
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.next_event()
    assert info.value.reason is CloseReason.MESSAGE_INVALID


@FAST
@given(st.integers(limits.MIN_RX_FRAME, limits.NOISE_MAX_MESSAGE))
def test_offer_check_uses_each_side_own_view_of_the_device_limit(rx_max_frame: int) -> None:
    client = new_client(rx_max_frame=rx_max_frame)
    pair = handshake(client=client, server=new_server())
    assert pair.server.peer_rx_max_frame == rx_max_frame
    offer = OtaOffer(3, 4, 10, SHA, max_chunk_for_frame(rx_max_frame), 1)
    assert deliver(pair.server.send(offer), pair.client) == [offer]


def test_roles_are_as_documented() -> None:
    """The direction table in docs/PROTOCOL.md section 9."""
    assert {type(m) for m in DEVICE_OTA} <= FROM_DEVICE
    assert {type(m) for m in SERVER_OTA} <= FROM_SERVER
    assert not {type(m) for m in DEVICE_OTA} & FROM_SERVER
    assert not {type(m) for m in SERVER_OTA} & FROM_DEVICE
