"""Shared helpers for the protocol tests: fixed keys, sample messages, Hypothesis strategies,
and a client/server Connection pair fed into each other (no event loop, no sockets)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from protocol import limits
from protocol.codes import (
    AckResult,
    CloseReason,
    OtaAbortReason,
    OtaRefusal,
    OtaResult,
    Privilege,
    Status,
    SubscribeResult,
)
from protocol.connection import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    Event,
    NeedData,
    Refused,
    Role,
    State,
)
from protocol.errors import RemoteProtocolError
from protocol.framing import encode_frame
from protocol.messages import (
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
    encode_message,
    max_chunk_for_frame,
)
from protocol.noise import KeyPair

# Close reasons that only ever appear in the server log, never in a GOODBYE.
LOG_ONLY_REASONS = frozenset({CloseReason.AUTH_FAILED, CloseReason.CONNECTION_LOST, CloseReason.UNSUPPORTED_VERSION})

# Deterministic Hypothesis runs: the same examples every time, no example database.
FAST = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
THOROUGH = settings(FAST, max_examples=300)

# ---------------------------------------------------------------------------- fixed keys

SERVER_KEY = KeyPair(bytes(range(1, 33)))
DEVICE_KEY = KeyPair(bytes(range(33, 65)))
OTHER_KEY = KeyPair(bytes(range(65, 97)))
CLIENT_EPHEMERAL = KeyPair(bytes(range(97, 129)))
SERVER_EPHEMERAL = KeyPair(bytes(range(129, 161)))
DEVICE_ID = bytes.fromhex("0123456789abcdef01234567")
CLIENT_RX = 1024  # the simulated device's receive limit, announced in Hello


def make_hello(**changes: Any) -> Hello:
    hello = Hello(
        device_id=DEVICE_ID,
        product_id=4242,
        firmware_version=7,
        platform_id=12,
        counter=1_700_000_000_000_000,
        rx_max_frame=CLIENT_RX,
        claim_code=None,
    )
    return dataclasses.replace(hello, **changes)


def make_welcome(**changes: Any) -> Welcome:
    welcome = Welcome(
        status=Status.OK,
        privileges=Privilege.all(),
        product_id=4242,
        heartbeat_interval=30,
        idle_timeout=90,
        rx_max_frame=limits.SERVER_RX_MAX_FRAME,
        server_time_ms=1_700_000_000_000,
    )
    return dataclasses.replace(welcome, **changes)


def new_client(
    *,
    server_public_key: bytes = SERVER_KEY.public,
    rx_max_frame: int = CLIENT_RX,
    static_key: KeyPair = DEVICE_KEY,
    deterministic: bool = True,
) -> Connection:
    return Connection(
        Role.CLIENT,
        static_key,
        server_public_key=server_public_key,
        rx_max_frame=rx_max_frame,
        ephemeral=CLIENT_EPHEMERAL if deterministic else None,
    )


def new_server(*, rx_max_frame: int = limits.SERVER_RX_MAX_FRAME, deterministic: bool = True) -> Connection:
    return Connection(
        Role.SERVER,
        SERVER_KEY,
        rx_max_frame=rx_max_frame,
        ephemeral=SERVER_EPHEMERAL if deterministic else None,
    )


# ---------------------------------------------------------------------------- driving


def drain(conn: Connection) -> list[Event]:
    """Take events until NEED_DATA or the end (ConnectionClosed / Refused / Goodbye)."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if isinstance(event, NeedData):
            assert event is NEED_DATA
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed | Refused | Goodbye):
            return events


def deliver(data: bytes, conn: Connection) -> list[Event]:
    """Feed bytes (never b"": that is EOF) and return the events they complete."""
    assert data, "b'' means end of stream; use close()"
    conn.receive_data(data)
    return drain(conn)


def close(conn: Connection) -> list[Event]:
    conn.receive_data(b"")
    return drain(conn)


def forge(conn: Connection, message: Message) -> bytes:
    """Encrypt any message with conn's transport cipher, bypassing send()'s state checks:
    a stand-in for a peer whose implementation misbehaves."""
    return forge_plaintext(conn, encode_message(message))


def forge_plaintext(conn: Connection, plaintext: bytes) -> bytes:
    cipher = conn._send_cipher
    assert cipher is not None, "handshake not done"
    return encode_frame(cipher.encrypt_with_ad(b"", plaintext))


@dataclass
class Pair:
    client: Connection
    server: Connection
    hello: Hello
    welcome: Welcome


def handshake(
    *,
    client: Connection | None = None,
    server: Connection | None = None,
    hello: Hello | None = None,
    welcome: Welcome | None = None,
    ready: bool = True,
) -> Pair:
    """Run the handshake (and Ready, unless ready=False); both sides end OPEN (or CONFIRMING)."""
    client = client or new_client()
    server = server or new_server()
    hello = hello or make_hello(rx_max_frame=client.rx_max_frame)
    welcome = welcome or make_welcome(rx_max_frame=server.rx_max_frame)
    assert client.next_event() is NEED_DATA  # the device speaks first
    assert deliver(client.send(hello), server) == [hello]
    assert state(server) is State.DECIDING
    assert server.hello == hello
    assert server.remote_static_key == client_static_public(client)
    assert deliver(server.send(welcome), client) == [welcome]
    assert state(client) is State.CONFIRMING and state(server) is State.CONFIRMING
    if ready:
        assert deliver(client.send(Ready()), server) == [Ready()]
        assert state(client) is State.OPEN and state(server) is State.OPEN
    return Pair(client, server, hello, welcome)


def state(conn: Connection) -> State:
    """conn.state, read through a call so mypy does not keep a stale narrowed value."""
    return conn.state


def client_static_public(client: Connection) -> bytes:
    hs = client._handshake
    assert hs is not None
    return hs.s.public


def chunks(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Split data at the given offsets (out-of-range and duplicate cuts are ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def comparable(events: Sequence[Event]) -> list[object]:
    """Messages compare by value; Refused / ConnectionClosed only by kind."""
    return [e if isinstance(e, Message) else type(e) for e in events]


def feed_untrusted(conn: Connection, pieces: Iterable[bytes], *, eof: bool) -> list[Event]:
    """Feed hostile bytes: the only acceptable outcomes are events, NEED_DATA, or a
    RemoteProtocolError that then sticks. Anything else propagates and fails the test."""
    events: list[Event] = []
    try:
        for piece in pieces:
            if not piece:
                continue
            events += deliver(piece, conn)
            if state(conn) is State.CLOSED:
                return events
        if eof:
            events += close(conn)
    except RemoteProtocolError as exc:
        assert state(conn) is State.ERROR
        with pytest.raises(RemoteProtocolError) as again:
            conn.next_event()
        assert again.value is exc
    return events


def pack(items: Any) -> bytes:
    out: bytes = msgpack.packb(items, use_bin_type=True)
    return out


def wire_items(message: Message) -> list[Any]:
    """The msgpack array a message encodes to (plain Python values)."""
    items = msgpack.unpackb(encode_message(message), raw=False)
    assert isinstance(items, list)
    return items


# ---------------------------------------------------------------------------- strategies


def utf8_text(min_bytes: int, max_bytes: int) -> st.SearchStrategy[str]:
    """Text whose UTF-8 encoding is min_bytes..max_bytes long (multi-byte characters included)."""

    def fit(s: str) -> str:
        return s.encode()[:max_bytes].decode(errors="ignore")

    return (
        st.text(st.characters(codec="utf-8"), max_size=max_bytes)
        .map(fit)
        .filter(lambda s: len(s.encode()) >= min_bytes)
    )


seqs = st.integers(0, limits.MAX_SEQ)
transfer_ids = st.integers(0, limits.MAX_TRANSFER_ID)
image_offsets = st.integers(0, limits.MAX_OTA_IMAGE_SIZE)
details = utf8_text(0, limits.MAX_TEXT_LEN)


def ota_strategies(max_chunk: int) -> dict[type[Message], st.SearchStrategy[Any]]:
    """The OTA messages, with chunk sizes and chunk data of at most max_chunk bytes."""
    return {
        OtaOffer: st.builds(
            OtaOffer,
            transfer_id=transfer_ids,
            version=st.integers(0, limits.MAX_FIRMWARE_VERSION),
            size=st.integers(1, limits.MAX_OTA_IMAGE_SIZE),
            sha256=st.binary(min_size=limits.OTA_SHA256_LEN, max_size=limits.OTA_SHA256_LEN),
            chunk_size=st.integers(1, max_chunk),
            window=st.integers(1, limits.MAX_OTA_WINDOW),
            signature=st.none() | st.binary(min_size=limits.OTA_SIGNATURE_LEN, max_size=limits.OTA_SIGNATURE_LEN),
            platform_id=st.none() | st.integers(0, limits.MAX_PLATFORM_ID),
            product_id=st.none() | st.integers(1, limits.MAX_PRODUCT_ID),
        ),
        OtaAccept: st.builds(OtaAccept, transfer_id=transfer_ids, offset=image_offsets),
        OtaDefer: st.builds(OtaDefer, transfer_id=transfer_ids, retry_after=st.integers(1, limits.MAX_OTA_RETRY_AFTER)),
        OtaRefuse: st.builds(OtaRefuse, transfer_id=transfer_ids, reason=st.sampled_from(OtaRefusal), detail=details),
        OtaChunk: st.builds(
            OtaChunk,
            transfer_id=transfer_ids,
            offset=st.integers(0, limits.MAX_OTA_IMAGE_SIZE - 1),
            data=st.binary(min_size=1, max_size=max_chunk),
        ),
        OtaWindowAck: st.builds(OtaWindowAck, transfer_id=transfer_ids, received_until=image_offsets),
        OtaComplete: st.builds(
            OtaComplete, transfer_id=transfer_ids, status=st.sampled_from(OtaResult), detail=details
        ),
        OtaAbort: st.builds(OtaAbort, transfer_id=transfer_ids, reason=st.sampled_from(OtaAbortReason), detail=details),
    }


def subscription_strategies(max_event_data: int) -> dict[type[Message], st.SearchStrategy[Any]]:
    """The subscription messages, with EVENT data of at most max_event_data bytes."""
    prefixes = utf8_text(0, limits.MAX_SUBSCRIBE_PREFIX)
    return {
        Subscribe: st.builds(Subscribe, seq=seqs, prefix=prefixes),
        SubscribeAck: st.builds(SubscribeAck, seq=seqs, result=st.sampled_from(SubscribeResult)),
        Unsubscribe: st.builds(Unsubscribe, seq=seqs, prefix=st.none() | prefixes),
        EventMessage: st.builds(
            EventMessage,
            event_id=st.integers(0, limits.MAX_EVENT_ID),
            name=utf8_text(1, limits.MAX_EVENT_NAME),
            data=st.binary(max_size=max_event_data),
            published_at_ms=st.integers(0, 2**63 - 1),
            ttl=st.integers(0, limits.MAX_EVENT_TTL),
            source=st.none() | st.binary(min_size=limits.DEVICE_ID_LEN, max_size=limits.DEVICE_ID_LEN),
            to_device=st.booleans(),
            skipped=st.integers(0, limits.MAX_SKIPPED),
        ),
    }


product_ids = st.none() | st.integers(1, limits.MAX_PRODUCT_ID)
rx_frames = st.integers(limits.MIN_RX_FRAME, limits.NOISE_MAX_MESSAGE)
privileges = st.integers(0, int(Privilege.all())).map(Privilege)

STRATEGIES: dict[type[Message], st.SearchStrategy[Any]] = {
    Hello: st.builds(
        Hello,
        device_id=st.binary(min_size=limits.DEVICE_ID_LEN, max_size=limits.DEVICE_ID_LEN),
        product_id=product_ids,
        firmware_version=st.integers(0, limits.MAX_FIRMWARE_VERSION),
        platform_id=st.integers(0, limits.MAX_PLATFORM_ID),
        counter=st.integers(1, limits.MAX_COUNTER),
        rx_max_frame=rx_frames,
        claim_code=st.none() | utf8_text(1, limits.MAX_CLAIM_CODE_LEN),
    ),
    Welcome: st.builds(
        Welcome,
        status=st.sampled_from(Status),
        privileges=privileges,
        product_id=product_ids,
        heartbeat_interval=st.integers(1, 3600),
        idle_timeout=st.integers(1, 3 * 3600),
        rx_max_frame=rx_frames,
        server_time_ms=st.integers(0, 2**63 - 1),
    ),
    Ready: st.just(Ready()),
    Ping: st.builds(Ping, seq=seqs),
    Pong: st.builds(Pong, seq=seqs),
    StatusUpdate: st.builds(
        StatusUpdate,
        status=st.sampled_from(Status),
        privileges=privileges,
        product_id=product_ids,
    ),
    Goodbye: st.builds(
        Goodbye,
        reason=st.sampled_from([r for r in CloseReason if r not in LOG_ONLY_REASONS]),
        detail=utf8_text(0, limits.MAX_TEXT_LEN),
    ),
    Publish: st.builds(
        Publish,
        seq=seqs,
        name=utf8_text(1, limits.MAX_EVENT_NAME),
        data=st.binary(max_size=limits.MAX_EVENT_DATA),
        ttl=st.integers(0, limits.MAX_EVENT_TTL),
        private=st.booleans(),
    ),
    PublishAck: st.builds(PublishAck, seq=seqs, result=st.sampled_from(AckResult)),
    **ota_strategies(limits.MAX_OTA_CHUNK),
    **subscription_strategies(limits.MAX_EVENT_DATA),
}

any_message: st.SearchStrategy[Message] = st.one_of(*STRATEGIES.values())
# What each side may send once the session is OPEN (Ready only once, so not here).
# OTA messages from the server are bounded by what fits the test device's CLIENT_RX frames.
_ota_for_client = ota_strategies(max_chunk_for_frame(CLIENT_RX))
# The largest EVENT data that fits CLIENT_RX whatever the name (docs/PROTOCOL.md section 19.5).
_events_for_client = subscription_strategies(
    CLIENT_RX - limits.TAG_LEN - limits.EVENT_FIXED_OVERHEAD - limits.MAX_EVENT_NAME
)
DEVICE_OTA = (OtaAccept, OtaDefer, OtaRefuse, OtaWindowAck, OtaComplete)
SERVER_OTA = (OtaOffer, OtaChunk, OtaAbort)
device_messages: st.SearchStrategy[Message] = st.one_of(
    STRATEGIES[Ping],
    STRATEGIES[Pong],
    STRATEGIES[Publish],
    STRATEGIES[Subscribe],
    STRATEGIES[Unsubscribe],
    *(STRATEGIES[c] for c in DEVICE_OTA),
)
server_messages: st.SearchStrategy[Message] = st.one_of(
    STRATEGIES[Ping],
    STRATEGIES[Pong],
    STRATEGIES[StatusUpdate],
    STRATEGIES[PublishAck],
    STRATEGIES[SubscribeAck],
    _events_for_client[EventMessage],
    *(_ota_for_client[c] for c in SERVER_OTA),
)

# Arbitrary msgpack-able values (no maps at the top: maps are tested on their own).
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
msgpack_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=8,
)

# One valid example of each subscription message (the field-limit tests start from these).
SUBSCRIPTION_VALID: dict[type[Message], Message] = {
    Subscribe: Subscribe(5, "temp/"),
    SubscribeAck: SubscribeAck(5, SubscribeResult.TOO_MANY),
    Unsubscribe: Unsubscribe(6, "temp/"),
    EventMessage: EventMessage(41, "temp/kitchen", b"21.5", 1_700_000_000_123, 60, DEVICE_ID, False, 3),
}
