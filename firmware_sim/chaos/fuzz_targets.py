"""The protocol/ parsers fed arbitrary bytes: one input, one run, sans-I/O and deterministic.

    byte 0: which target (below)     byte 1: how the rest is cut into receive_data() calls
    bytes 2..: the input

Targets: framing (FrameDecoder); one message (decode_message); the server Connection before the
handshake (preamble, HELLO frame; a HELLO that decodes is answered with WELCOME and the bytes go
on); the device Connection awaiting WELCOME; the server and the device Connection after a
completed handshake, fed frames sealed with the peer's real cipher, each plaintext taken from the
input (a one-byte length, then that many bytes); the server after the handshake fed raw,
unsealed bytes; and the OTA transfer's two sides (protocol/ota.py) fed the peer's messages.
Anything raised but protocol/'s own ProtocolError is a bug.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from protocol import limits
from protocol.codes import Privilege, Status
from protocol.connection import PREAMBLE, Connection, ConnectionClosed, NeedData, Refused, Role, prologue_for
from protocol.errors import ProtocolError
from protocol.framing import FrameDecoder, encode_frame
from protocol.messages import (
    Hello,
    Message,
    OtaAbort,
    OtaAccept,
    OtaChunk,
    OtaOffer,
    OtaWindowAck,
    Ready,
    Welcome,
    decode_message,
    encode_message,
    max_chunk_for_frame,
)
from protocol.noise import CipherState, HandshakeIK, KeyPair
from protocol.ota import ImageReceiver, ImageSender, ReceiverState, build_offer

# Fixed keys: a failing input replays the same way every time.
SERVER_KEY = KeyPair(bytes(range(1, 33)))
DEVICE_KEY = KeyPair(bytes(range(33, 65)))
DEVICE_EPHEMERAL = KeyPair(bytes(range(65, 97)))
SERVER_EPHEMERAL = KeyPair(bytes(range(97, 129)))
DEVICE_ID = bytes(range(12))
MAX_EVENTS = 10_000  # a parser that yields more events than this from one input is stuck


def hello() -> Hello:
    return Hello(DEVICE_ID, 7, 1, 6, 1, limits.NOISE_MAX_MESSAGE)


def welcome(rx_max_frame: int = limits.SERVER_RX_MAX_FRAME) -> Welcome:
    return Welcome(Status.OK, Privilege.all(), 7, 30, 75, rx_max_frame, 1_700_000_000_000)


def chunks(data: bytes, cut: int) -> list[bytes]:
    """The input as receive_data() calls: whole (cut 0) or in pieces of `cut` bytes."""
    if cut == 0 or not data:
        return [data]
    return [data[i : i + cut] for i in range(0, len(data), cut)]


def drain(conn: Connection, on_hello: Callable[[], None] | None = None) -> None:
    """Events until the connection needs data, closes or is refused (bounded)."""
    for _ in range(MAX_EVENTS):
        event = conn.next_event()
        if isinstance(event, NeedData | ConnectionClosed | Refused):
            if isinstance(event, NeedData) and on_hello is not None and conn.hello is not None:
                on_hello()
                on_hello = None
                continue
            return
    raise AssertionError(f"more than {MAX_EVENTS} events from one input")


def feed(conn: Connection, data: bytes, cut: int, on_hello: Callable[[], None] | None = None) -> None:
    for piece in chunks(data, cut):
        conn.receive_data(piece)
        drain(conn, on_hello)
        if conn.hello is not None:
            on_hello = None


def target_framing(data: bytes, cut: int) -> None:
    decoder = FrameDecoder(limits.MIN_RX_FRAME + (cut << 8 if cut else limits.NOISE_MAX_MESSAGE))
    for piece in chunks(data, cut):
        decoder.feed(piece)
        for _ in range(MAX_EVENTS):
            if decoder.next_frame() is None:
                break
    decoder.take(cut)


def target_message(data: bytes, cut: int) -> None:
    """A message that decodes also encodes again, to the same message (a LocalProtocolError here
    would be a bug: it escapes as AssertionError)."""
    message = decode_message(data)
    try:
        again = decode_message(encode_message(message))
    except ProtocolError as exc:
        raise AssertionError(f"{message!r} decoded but does not encode again: {exc}") from exc
    assert again == message, (message, again)


def target_server_handshake(data: bytes, cut: int) -> None:
    conn = Connection(Role.SERVER, SERVER_KEY, ephemeral=SERVER_EPHEMERAL)

    def answer() -> None:
        conn.send(welcome(conn.rx_max_frame))

    feed(conn, data, cut, answer)


def target_device_handshake(data: bytes, cut: int) -> None:
    conn = Connection(Role.CLIENT, DEVICE_KEY, server_public_key=SERVER_KEY.public, ephemeral=DEVICE_EPHEMERAL)
    conn.send(hello())
    feed(conn, data, cut)
    if conn.state.value == "confirming":
        conn.send(Ready())


def sealed(cipher: CipherState, data: bytes) -> bytes:
    """The input as frames: each a one-byte length, then that many plaintext bytes, sealed."""
    out = bytearray()
    at = 0
    while at < len(data):
        n = data[at]
        plaintext = data[at + 1 : at + 1 + n]
        at += 1 + n
        out += encode_frame(cipher.encrypt_with_ad(b"", plaintext))
    return bytes(out)


def open_server() -> tuple[Connection, CipherState]:
    """A server Connection after a completed handshake (WELCOME sent), and the device's send cipher."""
    server = Connection(Role.SERVER, SERVER_KEY, ephemeral=SERVER_EPHEMERAL)
    hs = HandshakeIK(
        initiator=True, static=DEVICE_KEY, remote_static=SERVER_KEY.public, prologue=prologue_for(PREAMBLE),
        ephemeral=DEVICE_EPHEMERAL,
    )  # fmt: skip
    server.receive_data(PREAMBLE + encode_frame(hs.write_message_1(encode_message(hello()))))
    assert isinstance(server.next_event(), Hello)
    flight = server.send(welcome(server.rx_max_frame))
    hs.read_message_2(flight[2:])
    send, _ = hs.split()
    return server, send


def open_device() -> tuple[Connection, CipherState]:
    """A device Connection after a completed handshake (READY sent), and the server's send cipher."""
    device = Connection(Role.CLIENT, DEVICE_KEY, server_public_key=SERVER_KEY.public, ephemeral=DEVICE_EPHEMERAL)
    flight = device.send(hello())
    hs = HandshakeIK(initiator=False, static=SERVER_KEY, prologue=prologue_for(PREAMBLE), ephemeral=SERVER_EPHEMERAL)
    hs.read_message_1(flight[len(PREAMBLE) + 2 :])
    device.receive_data(encode_frame(hs.write_message_2(encode_message(welcome()))))
    assert isinstance(device.next_event(), Welcome)
    device.send(Ready())
    _, send = hs.split()
    return device, send


def target_server_open(data: bytes, cut: int) -> None:
    server, cipher = open_server()
    if cut & 1:  # odd cuts: READY first, so the input meets the OPEN state
        server.receive_data(encode_frame(cipher.encrypt_with_ad(b"", encode_message(Ready()))))
        drain(server)
    feed(server, sealed(cipher, data), cut >> 1)


def target_device_open(data: bytes, cut: int) -> None:
    device, cipher = open_device()
    feed(device, sealed(cipher, data), cut)


def target_server_raw(data: bytes, cut: int) -> None:
    server, _ = open_server()
    feed(server, data, cut)


def messages(data: bytes) -> list[Message]:
    """The input as messages: each a one-byte length, then that many bytes; undecodable ones are
    left out (decoding has its own target)."""
    out: list[Message] = []
    at = 0
    while at < len(data):
        n = data[at]
        with contextlib.suppress(ProtocolError):
            out.append(decode_message(data[at + 1 : at + 1 + n]))
        at += 1 + n
    return out


def target_ota_receiver(data: bytes, cut: int) -> None:
    """The device's ImageReceiver fed the server's OTA messages, answering as firmware does:
    accept what it may, verify a complete image, refuse nothing on its own."""
    receiver = ImageReceiver()
    for message in messages(data):
        if isinstance(message, OtaOffer):
            if receiver.offer(message, platform_id=6, product_id=7) is None:
                receiver.accept()
        elif isinstance(message, OtaChunk):
            result = receiver.receive_chunk(message)
            if result.store and cut & 1:
                receiver.write_failed("fuzz")
        elif isinstance(message, OtaAbort):
            receiver.abort(message)
        if receiver.state is ReceiverState.VERIFYING:
            receiver.verify()
        if cut & 2 and receiver.state is not ReceiverState.VERIFYING:
            receiver.connection_lost()


OTA_IMAGE = bytes(range(256)) * 4


def target_ota_sender(data: bytes, cut: int) -> None:
    """The server's ImageSender for a 1 KiB image fed the device's answers."""
    offer = build_offer(
        transfer_id=9, version=2, image=OTA_IMAGE, rx_max_frame=limits.MIN_RX_FRAME, window=1 + cut % 8,
        chunk_size=1 + (cut * 2) % max_chunk_for_frame(limits.MIN_RX_FRAME),
    )  # fmt: skip
    sender = ImageSender(offer, OTA_IMAGE)
    for message in messages(data):
        if isinstance(message, OtaAccept):
            sender.start(message)
        elif isinstance(message, OtaWindowAck):
            sender.on_ack(message)
        if sender.started:
            sender.chunks_to_send()


TARGETS: tuple[Callable[[bytes, int], None], ...] = (
    target_framing, target_message, target_server_handshake, target_device_handshake, target_server_open,
    target_device_open, target_server_raw, target_ota_receiver, target_ota_sender,
)  # fmt: skip


def one_input(data: bytes) -> None:
    """Run one input; ProtocolError is the parsers' answer to bad bytes, anything else escapes."""
    if len(data) < 2:
        return
    target = TARGETS[data[0] % len(TARGETS)]
    with contextlib.suppress(ProtocolError):
        target(data[2:], data[1])
