"""A device link built from protocol/'s parts (Noise IK, framing, messages) instead of its
Connection, so it can seal any plaintext, including ones the Connection would never encode:
a properly encrypted frame whose message is malformed."""

from __future__ import annotations

import trio

from protocol import limits
from protocol.codes import CloseReason
from protocol.connection import PREAMBLE, prologue_for
from protocol.errors import RemoteProtocolError
from protocol.framing import FrameDecoder, encode_frame
from protocol.messages import Hello, Message, Ready, Welcome, decode_message, encode_message
from protocol.noise import CipherState, HandshakeIK

from ..identity import CounterSource, DeviceIdentity

_COUNTERS = CounterSource()


class LinkRefused(Exception):
    """The server answered the handshake with the refusal frame."""


class RawLink:
    """One handshaken connection: `send_plaintext` seals anything, `receive` decrypts what comes."""

    def __init__(
        self, stream: trio.SocketStream, send: CipherState, recv: CipherState, welcome: Welcome, pending: bytes
    ) -> None:
        self.stream = stream
        self.welcome = welcome
        self._send = send
        self._recv = recv
        self._decoder = FrameDecoder(limits.NOISE_MAX_MESSAGE)
        self._decoder.feed(pending)  # what arrived after WELCOME in the same read

    async def send_plaintext(self, plaintext: bytes) -> None:
        await self.stream.send_all(encode_frame(self._send.encrypt_with_ad(b"", plaintext)))

    async def send(self, message: Message) -> None:
        await self.send_plaintext(encode_message(message))

    async def receive(self) -> Message | None:
        """The server's next message; None when the stream ended."""
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return decode_message(self._recv.decrypt_with_ad(b"", frame))
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self._decoder.feed(data)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


def hello_for(identity: DeviceIdentity, product_id: int | None = None) -> Hello:
    return Hello(
        device_id=identity.device_id, product_id=product_id, firmware_version=1, platform_id=6,
        counter=_COUNTERS.next(), rx_max_frame=limits.NOISE_MAX_MESSAGE,
    )  # fmt: skip


def first_flight(identity: DeviceIdentity, server_key: bytes) -> tuple[bytes, HandshakeIK]:
    """What a device sends on connect: the preamble and handshake message 1 carrying its HELLO."""
    hs = HandshakeIK(initiator=True, static=identity.key, remote_static=server_key, prologue=prologue_for(PREAMBLE))
    return PREAMBLE + encode_frame(hs.write_message_1(encode_message(hello_for(identity)))), hs


async def open_raw_link(stream: trio.SocketStream, identity: DeviceIdentity, server_key: bytes) -> RawLink:
    """Handshake (HELLO, WELCOME, READY) over `stream`. LinkRefused, or RemoteProtocolError."""
    flight, hs = first_flight(identity, server_key)
    await stream.send_all(flight)
    decoder = FrameDecoder(limits.MAX_WELCOME_FRAME)
    while (frame := decoder.next_frame()) is None:
        data = await stream.receive_some(4096)
        if not data:
            raise RemoteProtocolError("closed during the handshake", CloseReason.CONNECTION_LOST)
        decoder.feed(data)
    if not frame:
        raise LinkRefused("the server refused the handshake")
    welcome = decode_message(hs.read_message_2(frame))
    if not isinstance(welcome, Welcome):
        raise RemoteProtocolError(f"handshake carried {type(welcome).__name__}", CloseReason.UNEXPECTED_MESSAGE)
    send, recv = hs.split()
    link = RawLink(stream, send, recv, welcome, decoder.take(decoder.buffered) or b"")
    await link.send(Ready())
    return link
