"""The device link as a sans-I/O state machine, driven identically by server and simulator.

Over 400 lines, knowingly: one state machine, its transitions read top to bottom.

    conn.receive_data(data)      # bytes from the socket; b"" means the peer closed
    event = conn.next_event()    # a Message, Refused, ConnectionClosed, or NEED_DATA
    events = conn.next_events()  # every event the buffered bytes hold ([] for NEED_DATA)
    data = conn.send(message)    # bytes to write to the socket
    data = conn.send_batch(msgs) # the same for several messages, sealed into one buffer
    view = conn.send_batch_into(msgs, buffer)  # ... into a buffer the caller reuses

States (all transitions live in this file):

    client: IDLE --send Hello--> AWAIT_WELCOME --Welcome--> CONFIRMING --send Ready--> OPEN
                                 AWAIT_WELCOME --refusal frame--> CLOSED
    server: AWAIT_HELLO --Hello--> DECIDING --send Welcome--> CONFIRMING --Ready--> OPEN
                                   DECIDING --refuse()--> CLOSED
    either: OPEN --Goodbye sent or received, or EOF--> CLOSED;  any peer fault --> ERROR

OTA and subscription messages travel in OPEN like any other; the one rule checked here is that
an OTA_OFFER's chunk_size fits the device's rx_max_frame (protocol.messages.max_chunk_for_frame).
Which events a subscription delivers is the server's policy, not the link's.

Before OPEN the server accepts nothing but the preamble, handshake message 1, and then READY
(or GOODBYE, if the device aborts).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Final

from . import limits
from .codes import CloseReason
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .framing import HEADER_LEN, REFUSAL_FRAME, FrameDecoder, encode_frame, frame_header
from .messages import (
    EventMessage,
    Goodbye,
    Hello,
    Message,
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
    Subscribe,
    SubscribeAck,
    Unsubscribe,
    Welcome,
    decode_message,
    encode_chunk_head,
    encode_message,
    max_chunk_for_frame,
)
from .noise import CipherBatch, CipherState, HandshakeIK, KeyPair

MAGIC: Final = b"FG"
PREAMBLE: Final = MAGIC + limits.PROTOCOL_VERSION.to_bytes(2, "big")
PROLOGUE_LABEL: Final = b"fleetgate/device-link"


def prologue_for(preamble: bytes) -> bytes:
    """The Noise prologue: a label plus the exact preamble, so a rewritten version breaks the handshake."""
    return PROLOGUE_LABEL + preamble


class Role(Enum):
    CLIENT = "client"  # the device (Noise initiator)
    SERVER = "server"  # the cloud (Noise responder)


class State(Enum):
    IDLE = "idle"
    AWAIT_HELLO = "await_hello"
    AWAIT_WELCOME = "await_welcome"
    DECIDING = "deciding"
    CONFIRMING = "confirming"
    OPEN = "open"
    CLOSED = "closed"
    ERROR = "error"


class Refused:
    """Client event: the server refused the handshake (it says nothing about why)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Refused()"


class ConnectionClosed:
    """The peer closed the byte stream cleanly between frames."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ConnectionClosed()"


class NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()
Event = Message | Refused | ConnectionClosed

# Which messages each side may send once the handshake is done. The OTA transfer's own order
# (offer, answer, chunks, acks, completion) is checked by protocol.ota, not here.
FROM_DEVICE: Final = frozenset(
    {
        Ready,
        Ping,
        Pong,
        Publish,
        Subscribe,
        Unsubscribe,
        Goodbye,
        OtaAccept,
        OtaDefer,
        OtaRefuse,
        OtaWindowAck,
        OtaComplete,
    }
)
FROM_SERVER: Final = frozenset(
    {Ping, Pong, StatusUpdate, PublishAck, SubscribeAck, EventMessage, Goodbye, OtaOffer, OtaChunk, OtaAbort}
)


class Connection:
    __slots__ = (
        "_decoder",
        "_eof",
        "_error",
        "_handshake",
        "_preamble_done",
        "_recv_cipher",
        "_send_cipher",
        "hello",
        "peer_rx_max_frame",
        "remote_static_key",
        "role",
        "rx_max_frame",
        "state",
    )

    def __init__(
        self,
        role: Role,
        static_key: KeyPair,
        *,
        server_public_key: bytes | None = None,
        rx_max_frame: int | None = None,
        ephemeral: KeyPair | None = None,
    ) -> None:
        # Defaults match what each side announces by default (Hello's and the server config's).
        if rx_max_frame is None:
            rx_max_frame = limits.NOISE_MAX_MESSAGE if role is Role.CLIENT else limits.SERVER_RX_MAX_FRAME
        if not limits.MIN_RX_FRAME <= rx_max_frame <= limits.NOISE_MAX_MESSAGE:
            raise LocalProtocolError(f"rx_max_frame must be {limits.MIN_RX_FRAME}..{limits.NOISE_MAX_MESSAGE}")
        self.role = role
        self.rx_max_frame = rx_max_frame
        self.peer_rx_max_frame = limits.MIN_RX_FRAME
        self.hello: Hello | None = None
        self.remote_static_key: bytes | None = server_public_key
        self._send_cipher: CipherState | None = None
        self._recv_cipher: CipherState | None = None
        self._eof = False
        self._preamble_done = role is Role.CLIENT  # only the server reads a preamble
        self._error: ProtocolError | None = None
        if role is Role.CLIENT:
            if server_public_key is None:
                raise LocalProtocolError("a device must pin the server's public key")
            self.state = State.IDLE
            self._decoder = FrameDecoder(limits.MAX_WELCOME_FRAME)
        else:
            self.state = State.AWAIT_HELLO
            self._decoder = FrameDecoder(limits.MAX_HELLO_FRAME)
        self._handshake: HandshakeIK | None = HandshakeIK(
            initiator=role is Role.CLIENT,
            static=static_key,
            remote_static=server_public_key,
            prologue=prologue_for(PREAMBLE),
            ephemeral=ephemeral,
        )

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes | bytearray) -> None:
        if self._eof and data:
            raise LocalProtocolError("data received after end of stream")
        if data:
            self._decoder.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self.state = State.ERROR
            self._error = exc
            raise

    def next_events(self) -> list[Event]:
        """Every event the buffered bytes hold, in order, as `next_event` would give them one at a
        time (the reader of a busy link decodes one read's frames in one call). It stops at
        NEED_DATA (an empty list means just that) or after the event that closes the stream. A
        protocol error after some events is kept: those events are returned, the next call raises."""
        if self._error is not None:
            raise self._error
        events: list[Event] = []
        # One AEAD object opens all of this read's transport frames (dropped on return).
        opener = self._recv_cipher.batch() if self._recv_cipher is not None else None
        try:
            while not isinstance(event := self._next_event(opener), NeedData):
                events.append(event)
                if self.state is State.CLOSED:
                    break
        except RemoteProtocolError as exc:
            self.state = State.ERROR
            self._error = exc
            if not events:
                raise
        return events

    def _next_event(self, opener: CipherBatch | None = None) -> Event | NeedData:
        state = self.state
        if state is State.CLOSED:
            return ConnectionClosed()
        if state in (State.IDLE, State.DECIDING):
            # Nothing from the peer is read until we have spoken (client) or decided (server).
            return NEED_DATA
        if state is State.AWAIT_HELLO and not self._read_preamble():
            return self._need_data_or_eof()
        frame = self._decoder.next_frame()
        if frame is None:
            return self._need_data_or_eof()
        if state is State.AWAIT_HELLO:
            return self._receive_hello(frame)
        if state is State.AWAIT_WELCOME:
            return self._receive_welcome(frame)
        return self._receive_transport(frame, opener)

    def _need_data_or_eof(self) -> Event | NeedData:
        if not self._eof:
            return NEED_DATA
        if self._decoder.buffered:
            raise RemoteProtocolError("stream ended in the middle of a frame")
        self.state = State.CLOSED
        return ConnectionClosed()

    def _read_preamble(self) -> bool:
        if self._preamble_done:
            return True
        preamble = self._decoder.take(len(PREAMBLE))
        if preamble is None:
            return False
        if preamble[:2] != MAGIC:
            raise RemoteProtocolError(f"bad preamble {preamble.hex()}: not a Fleetgate device")
        if preamble != PREAMBLE:
            version = int.from_bytes(preamble[2:], "big")
            raise RemoteProtocolError(f"protocol version {version} is not supported", CloseReason.UNSUPPORTED_VERSION)
        self._preamble_done = True
        return True

    def _receive_hello(self, frame: bytes) -> Event:
        hs = self._handshake
        assert hs is not None
        if not frame:
            raise RemoteProtocolError("empty handshake frame")
        try:
            payload = hs.read_message_1(frame)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"handshake message 1 rejected: {exc}", CloseReason.AUTH_FAILED) from None
        message = decode_message(payload)
        if not isinstance(message, Hello):
            raise RemoteProtocolError(
                f"handshake carried {type(message).__name__}, not Hello", CloseReason.UNEXPECTED_MESSAGE
            )
        self.hello = message
        self.remote_static_key = hs.rs
        self.peer_rx_max_frame = message.rx_max_frame
        self.state = State.DECIDING
        return message

    def _receive_welcome(self, frame: bytes) -> Event:
        hs = self._handshake
        assert hs is not None
        if not frame:
            self.state = State.CLOSED
            self._handshake = None
            return Refused()
        try:
            payload = hs.read_message_2(frame)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(
                f"handshake message 2 rejected (wrong server key?): {exc}", CloseReason.AUTH_FAILED
            ) from None
        message = decode_message(payload)
        if not isinstance(message, Welcome):
            raise RemoteProtocolError(
                f"handshake carried {type(message).__name__}, not Welcome", CloseReason.UNEXPECTED_MESSAGE
            )
        self.peer_rx_max_frame = message.rx_max_frame
        self._finish_handshake()
        return message

    def _finish_handshake(self) -> None:
        assert self._handshake is not None
        self._send_cipher, self._recv_cipher = self._handshake.split()
        self._handshake = None  # the handshake state (and its keys) is no longer needed
        self._decoder.max_frame = self.rx_max_frame
        self.state = State.CONFIRMING

    def _receive_transport(self, frame: bytes, opener: CipherBatch | None) -> Event:
        assert self._recv_cipher is not None
        if not frame:
            raise RemoteProtocolError("empty transport frame")
        # No opener when this read's own frames finished the handshake: then opened one by one.
        cipher = self._recv_cipher if opener is None else opener
        message = decode_message(cipher.decrypt_with_ad(b"", frame))
        allowed = FROM_SERVER if self.role is Role.CLIENT else FROM_DEVICE
        if type(message) not in allowed:
            raise RemoteProtocolError(
                f"{type(message).__name__} may not be sent by the peer", CloseReason.UNEXPECTED_MESSAGE
            )
        if isinstance(message, OtaOffer) and message.chunk_size > max_chunk_for_frame(self.rx_max_frame):
            raise RemoteProtocolError(
                f"OtaOffer.chunk_size {message.chunk_size} does not fit our rx_max_frame {self.rx_max_frame}",
                CloseReason.MESSAGE_INVALID,
            )
        if self.role is Role.SERVER and self.state is State.CONFIRMING and not isinstance(message, Goodbye):
            if not isinstance(message, Ready):
                raise RemoteProtocolError(f"{type(message).__name__} before Ready", CloseReason.UNEXPECTED_MESSAGE)
            self.state = State.OPEN
        elif isinstance(message, Ready):
            raise RemoteProtocolError("Ready after the session was confirmed", CloseReason.UNEXPECTED_MESSAGE)
        if isinstance(message, Goodbye):
            self.state = State.CLOSED
        return message

    # ------------------------------------------------------------------ sending

    def send(self, message: Message) -> bytes:
        if isinstance(message, Hello):
            return self._send_hello(message)
        if isinstance(message, Welcome):
            return self._send_welcome(message)
        next_state = self._check_send(message, self.state)
        # Encode and size-check before encrypting: a refused send must not consume a nonce.
        plaintext = encode_message(message)
        self._check_size(len(plaintext))
        assert self._send_cipher is not None
        frame = encode_frame(self._send_cipher.encrypt_with_ad(b"", plaintext))
        self.state = next_state
        return frame

    def send_batch(self, messages: Sequence[Message]) -> bytearray:
        """send() for each message in order, into one buffer: each frame is encrypted in place,
        with no bytes object per frame and no join (an OTA window is about 1 MiB of frames).
        All or nothing: if one message may not be sent (LocalProtocolError), no nonce is used."""
        parts, state = self._batch_parts(messages)
        out = bytearray(_sealed_len(parts))
        self._seal_into(memoryview(out), parts, None)
        self.state = state
        return out

    def send_batch_into(self, messages: Sequence[Message], buffer: bytearray) -> memoryview:
        """send_batch() into the caller's `buffer`, grown when too small: a sender that reuses its
        buffers allocates, zeroes and page-faults no fresh megabyte per OTA window. The buffer's
        tail beyond the frames is the scratch where each chunk's plaintext is assembled. Returns
        a view of the frames at the buffer's start; release it before the buffer is used again."""
        parts, state = self._batch_parts(messages)
        size = _sealed_len(parts)
        scratch = limits.MAX_TRANSPORT_PLAINTEXT if any(data for _, data in parts) else 0
        if len(buffer) < size + scratch:  # grown in steps of 64 KiB: windows differ by a few bytes
            buffer.extend(bytes(-(-(size + scratch) // _GROW_STEP) * _GROW_STEP - len(buffer)))
        with memoryview(buffer) as view:
            self._seal_into(view[:size], parts, view[size : size + scratch] if scratch else None)
            self.state = state
            return view[:size]  # a view of its own, outliving `view`

    def _batch_parts(self, messages: Sequence[Message]) -> tuple[list[tuple[bytes, bytes | memoryview]], State]:
        """Each message's plaintext parts, checked in order, and the state after the last."""
        state = self.state
        parts: list[tuple[bytes, bytes | memoryview]] = []
        for message in messages:
            if isinstance(message, Hello | Welcome):
                raise LocalProtocolError(f"{type(message).__name__} is sent with send(), alone")
            state = self._check_send(message, state)
            part = _plaintext_parts(message)
            self._check_size(len(part[0]) + len(part[1]))
            parts.append(part)
        return parts, state

    def _check_send(self, message: Message, state: State) -> State:
        """Whether `message` may be sent in `state` (LocalProtocolError if not); the state after it."""
        allowed = FROM_DEVICE if self.role is Role.CLIENT else FROM_SERVER
        if type(message) not in allowed:
            raise LocalProtocolError(f"a {self.role.value} may not send {type(message).__name__}")
        if self._send_cipher is None or state is State.CLOSED:
            raise LocalProtocolError(f"cannot send {type(message).__name__} in state {state.value}")
        is_goodbye = isinstance(message, Goodbye)
        if is_goodbye:
            pass  # allowed in every state with keys, ERROR included: tell the peer why we close
        elif state is State.ERROR:
            raise LocalProtocolError("only Goodbye may be sent after a protocol error")
        elif self.role is Role.CLIENT and state is State.CONFIRMING:
            if not isinstance(message, Ready):
                raise LocalProtocolError("the device must send Ready first")
        elif isinstance(message, Ready):
            raise LocalProtocolError("Ready is sent once, right after Welcome")
        elif self.role is Role.SERVER and state is not State.OPEN:
            raise LocalProtocolError("the server sends nothing but Goodbye until the device is Ready")
        if isinstance(message, OtaOffer) and message.chunk_size > max_chunk_for_frame(self.peer_rx_max_frame):
            raise LocalProtocolError(
                f"OtaOffer.chunk_size {message.chunk_size} exceeds max_chunk_for_frame({self.peer_rx_max_frame})"
            )
        if is_goodbye:
            return State.CLOSED
        return State.OPEN if isinstance(message, Ready) else state

    def _check_size(self, plaintext_len: int) -> None:
        if plaintext_len + limits.TAG_LEN > self.peer_rx_max_frame:
            raise LocalProtocolError(
                f"frame of {plaintext_len + limits.TAG_LEN} bytes exceeds the peer's limit {self.peer_rx_max_frame}"
            )

    def _seal_into(
        self, out: memoryview, parts: list[tuple[bytes, bytes | memoryview]], scratch: memoryview | None
    ) -> None:
        """Write each (head, data) plaintext as a frame into `out`, which fits them exactly.
        `scratch`: MAX_TRANSPORT_PLAINTEXT bytes to assemble a chunk's plaintext in (else made here)."""
        assert self._send_cipher is not None
        sealer = self._send_cipher.batch()  # one AEAD object for the batch, dropped with it
        # Head and data must be one buffer for the AEAD: assembled here, one frame at a time.
        if scratch is None and any(d for _, d in parts):
            scratch = memoryview(bytearray(limits.MAX_TRANSPORT_PLAINTEXT))
        at = 0
        for head, data in parts:
            plaintext: bytes | memoryview = head
            if data:
                assert scratch is not None
                plaintext = scratch[: len(head) + len(data)]
                plaintext[: len(head)] = head
                plaintext[len(head) :] = data
            body = len(plaintext) + limits.TAG_LEN
            out[at : at + HEADER_LEN] = frame_header(body)
            at += HEADER_LEN
            sealer.encrypt_into(b"", plaintext, out[at : at + body])
            at += body

    def _send_hello(self, hello: Hello) -> bytes:
        if self.role is not Role.CLIENT or self.state is not State.IDLE:
            raise LocalProtocolError("Hello is sent once, by the device, first")
        assert self._handshake is not None
        if hello.rx_max_frame != self.rx_max_frame:
            raise LocalProtocolError("Hello.rx_max_frame must match the Connection's rx_max_frame")
        payload = encode_message(hello)
        if len(payload) > limits.HELLO_MAX_PAYLOAD:
            raise LocalProtocolError("Hello payload too large")
        self.state = State.AWAIT_WELCOME
        return PREAMBLE + encode_frame(self._handshake.write_message_1(payload))

    def _send_welcome(self, welcome: Welcome) -> bytes:
        if self.role is not Role.SERVER or self.state is not State.DECIDING:
            raise LocalProtocolError("Welcome is sent once, by the server, after Hello")
        assert self._handshake is not None
        if welcome.rx_max_frame != self.rx_max_frame:
            raise LocalProtocolError("Welcome.rx_max_frame must match the Connection's rx_max_frame")
        payload = encode_message(welcome)
        frame = encode_frame(self._handshake.write_message_2(payload))
        self._finish_handshake()
        return frame

    def refuse(self) -> bytes:
        """Server: refuse the device. The bytes say only 'refused'; the reason stays in our log."""
        if self.role is not Role.SERVER or self.state not in (State.AWAIT_HELLO, State.DECIDING, State.ERROR):
            raise LocalProtocolError("refuse() is for the server, before the handshake completes")
        if self._handshake is None:
            raise LocalProtocolError("the handshake already completed")
        self._handshake = None
        self.state = State.CLOSED
        return REFUSAL_FRAME


_GROW_STEP = 65536


def _sealed_len(parts: list[tuple[bytes, bytes | memoryview]]) -> int:
    """Bytes on the wire for these plaintexts as frames: header, plaintext, tag each."""
    return sum(HEADER_LEN + len(head) + len(data) + limits.TAG_LEN for head, data in parts)


def _plaintext_parts(message: Message) -> tuple[bytes, bytes | memoryview]:
    """A message's plaintext as (head, data): an OTA chunk's data stays where it is (the image)
    until it is copied once, next to its head, for sealing; every other message is all head."""
    if isinstance(message, OtaChunk):
        return encode_chunk_head(message), message.data
    return encode_message(message), b""
