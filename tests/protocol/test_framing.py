"""Length-prefixed frames: round trips, arbitrary chunking, and the limit checked before buffering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codes import CloseReason
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.framing import HEADER_LEN, REFUSAL_FRAME, FrameDecoder, encode_frame
from protocol.limits import NOISE_MAX_MESSAGE

from .helpers import FAST, THOROUGH, byte_at_a_time, chunks

# Bodies kept small so Hypothesis spends its time on structure, plus explicit big cases below.
bodies = st.binary(min_size=1, max_size=300)


def raw_frame(body: bytes) -> bytes:
    """A frame as the wire carries it, including the zero-length frame encode_frame refuses."""
    return len(body).to_bytes(2, "big") + body


def decode_all(pieces: list[bytes], max_frame: int = NOISE_MAX_MESSAGE) -> list[bytes]:
    decoder = FrameDecoder(max_frame)
    out: list[bytes] = []
    for piece in pieces:
        decoder.feed(piece)
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    assert decoder.buffered == 0
    assert decoder.next_frame() is None
    return out


# ---------------------------------------------------------------------------- encode_frame


@FAST
@given(bodies)
def test_encode_frame_round_trip(body: bytes) -> None:
    frame = encode_frame(body)
    assert frame[:HEADER_LEN] == len(body).to_bytes(2, "big")
    assert frame[HEADER_LEN:] == body
    assert decode_all([frame]) == [body]


@pytest.mark.parametrize("size", [1, 255, 256, NOISE_MAX_MESSAGE])
def test_encode_frame_sizes(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = encode_frame(body)
    assert len(frame) == HEADER_LEN + size
    assert int.from_bytes(frame[:2], "big") == size
    assert decode_all([frame]) == [body]


@pytest.mark.parametrize("size", [0, NOISE_MAX_MESSAGE + 1])
def test_encode_frame_refuses_sizes_outside_the_range(size: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(bytes(size))


# ---------------------------------------------------------------------------- decoding a stream


@THOROUGH
@given(
    st.lists(st.binary(max_size=300), max_size=8),
    st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
)
def test_whole_vs_byte_at_a_time_vs_random_chunks(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(raw_frame(body) for body in frames)
    assert decode_all([stream]) == frames
    assert decode_all(byte_at_a_time(stream)) == frames
    assert decode_all(chunks(stream, cuts)) == frames


def test_zero_length_frame_is_empty_bytes() -> None:
    decoder = FrameDecoder(NOISE_MAX_MESSAGE)
    decoder.feed(REFUSAL_FRAME)
    assert decoder.next_frame() == b""
    assert decoder.buffered == 0
    assert decoder.next_frame() is None
    assert REFUSAL_FRAME == b"\x00\x00"


def test_partial_header_and_partial_body_need_more() -> None:
    decoder = FrameDecoder(100)
    decoder.feed(b"\x00")
    assert decoder.next_frame() is None
    decoder.feed(b"\x03ab")
    assert decoder.next_frame() is None
    assert decoder.buffered == 4
    decoder.feed(b"c\x00\x02d")
    assert decoder.next_frame() == b"abc"
    assert decoder.buffered == 3  # the next header and one byte of its body
    assert decoder.next_frame() is None
    decoder.feed(b"e")
    assert decoder.next_frame() == b"de"


# ---------------------------------------------------------------------------- the size limit


@FAST
@given(st.integers(min_value=1, max_value=NOISE_MAX_MESSAGE - 1), st.data())
def test_oversize_length_refused_on_the_header_alone(max_frame: int, data: st.DataObject) -> None:
    length = data.draw(st.integers(min_value=max_frame + 1, max_value=NOISE_MAX_MESSAGE))
    header = length.to_bytes(2, "big")
    decoder = FrameDecoder(max_frame)
    decoder.feed(header[:1])
    assert decoder.next_frame() is None
    decoder.feed(header[1:])
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_frame()
    assert info.value.reason is CloseReason.FRAME_TOO_LARGE
    assert decoder.buffered == 2  # nothing of the body was ever buffered
    # The decoder does not recover by itself: asking again fails the same way.
    with pytest.raises(RemoteProtocolError):
        decoder.next_frame()


def test_length_equal_to_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(5)
    decoder.feed(b"\x00\x05")
    assert decoder.next_frame() is None
    decoder.feed(b"12345")
    assert decoder.next_frame() == b"12345"


def test_limit_is_checked_per_frame_and_may_change_between_frames() -> None:
    decoder = FrameDecoder(4)
    decoder.feed(raw_frame(b"abcd") + raw_frame(b"abcdefgh"))
    assert decoder.next_frame() == b"abcd"
    with pytest.raises(RemoteProtocolError):
        decoder.next_frame()
    decoder.max_frame = 8  # the limit grows after authentication
    assert decoder.next_frame() == b"abcdefgh"


def test_frames_before_an_oversize_one_are_delivered() -> None:
    decoder = FrameDecoder(3)
    decoder.feed(raw_frame(b"ok") + b"\x00\x04")
    assert decoder.next_frame() == b"ok"
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_frame()
    assert info.value.reason is CloseReason.FRAME_TOO_LARGE


# ---------------------------------------------------------------------------- take (preamble)


def test_take_returns_exact_bytes_or_none() -> None:
    decoder = FrameDecoder(10)
    decoder.feed(b"FG")
    assert decoder.take(4) is None
    assert decoder.buffered == 2
    decoder.feed(b"\x00\x01" + raw_frame(b"x"))
    assert decoder.take(4) == b"FG\x00\x01"
    assert decoder.next_frame() == b"x"
    assert decoder.take(0) == b""
