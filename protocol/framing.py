"""Length-prefixed frames: a 2-byte big-endian length, then that many bytes (one Noise message).

A length of zero is reserved: sent by the server before the handshake completes it means
"refused". Any other length above the receiver's limit is rejected as soon as the two length
bytes arrive, before a byte of the body is buffered.
"""

from __future__ import annotations

from .codes import CloseReason
from .errors import LocalProtocolError, RemoteProtocolError
from .limits import NOISE_MAX_MESSAGE

HEADER_LEN = 2
REFUSAL_FRAME = b"\x00\x00"


def encode_frame(body: bytes) -> bytes:
    return frame_header(len(body)) + body


def frame_header(body_len: int) -> bytes:
    """The length prefix of a frame whose body has `body_len` bytes (for a sender that writes
    the body in place after it)."""
    if not 0 < body_len <= NOISE_MAX_MESSAGE:
        raise LocalProtocolError(f"frame body of {body_len} bytes is outside 1..{NOISE_MAX_MESSAGE}")
    return body_len.to_bytes(HEADER_LEN, "big")


class FrameDecoder:
    """Accumulates bytes and yields whole frame bodies.

    `next_frame()` returns a body, `b""` for the zero-length refusal frame, or None when more
    bytes are needed. The limit can change between frames (it grows after authentication).
    """

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data

    def take(self, n: int) -> bytes | None:
        """Remove and return exactly n raw bytes (used for the preamble), or None if short."""
        if len(self._buf) < n:
            return None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_frame(self) -> bytes | None:
        buf = self._buf
        if len(buf) < HEADER_LEN:
            return None
        length = (buf[0] << 8) | buf[1]
        if length > self.max_frame:
            raise RemoteProtocolError(
                f"frame length {length} exceeds the limit of {self.max_frame}",
                CloseReason.FRAME_TOO_LARGE,
            )
        end = HEADER_LEN + length
        if len(buf) < end:
            return None
        body = bytes(buf[HEADER_LEN:end])
        del buf[:end]
        return body
