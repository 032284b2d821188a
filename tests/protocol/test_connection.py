"""Connection: a client and a server state machine fed into each other, no event loop."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import limits
from protocol.codes import AckResult, CloseReason, Privilege, Status
from protocol.connection import (
    MAGIC,
    NEED_DATA,
    PREAMBLE,
    Connection,
    ConnectionClosed,
    Event,
    NeedData,
    Refused,
    Role,
    State,
    prologue_for,
)
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.framing import REFUSAL_FRAME, encode_frame
from protocol.messages import (
    Goodbye,
    Hello,
    Message,
    Ping,
    Pong,
    Publish,
    PublishAck,
    Ready,
    StatusUpdate,
    Welcome,
    encode_message,
)
from protocol.noise import HandshakeIK

from .helpers import (
    DEVICE_KEY,
    FAST,
    OTHER_KEY,
    SERVER_KEY,
    THOROUGH,
    byte_at_a_time,
    chunks,
    close,
    comparable,
    deliver,
    device_messages,
    drain,
    feed_untrusted,
    forge,
    forge_plaintext,
    handshake,
    make_hello,
    make_welcome,
    msgpack_values,
    new_client,
    new_server,
    pack,
    server_messages,
    state,
)

HEADER = 2


def raises_remote(conn: Connection, reason: CloseReason) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.reason is reason, info.value
    assert state(conn) is State.ERROR
    return info.value


def length_header(n: int) -> bytes:
    return n.to_bytes(2, "big")


# ---------------------------------------------------------------------------- happy paths


def test_handshake_states_and_negotiated_limits() -> None:
    client = new_client()
    server = new_server()
    assert state(client) is State.IDLE and state(server) is State.AWAIT_HELLO
    pair = handshake(client=client, server=server)
    assert client.peer_rx_max_frame == server.rx_max_frame == pair.welcome.rx_max_frame
    assert server.peer_rx_max_frame == client.rx_max_frame == pair.hello.rx_max_frame
    assert server.hello == pair.hello
    assert server.remote_static_key == DEVICE_KEY.public
    assert client.remote_static_key == SERVER_KEY.public
    assert client.next_event() is NEED_DATA and server.next_event() is NEED_DATA


def test_message1_starts_with_the_preamble() -> None:
    data = new_client().send(make_hello())
    assert data[:4] == PREAMBLE == MAGIC + limits.PROTOCOL_VERSION.to_bytes(2, "big")
    assert int.from_bytes(data[4:6], "big") == len(data) - 6 <= limits.MAX_HELLO_FRAME


@pytest.mark.parametrize("deterministic", [True, False])
def test_publish_ping_status_goodbye_flows(deterministic: bool) -> None:
    pair = handshake(
        client=new_client(deterministic=deterministic),
        server=new_server(deterministic=deterministic),
    )
    client, server = pair.client, pair.server

    publish = Publish(1, "temperature", b"21.5", ttl=120, private=False)
    assert deliver(client.send(publish), server) == [publish]
    ack = PublishAck(1, AckResult.ACCEPTED)
    assert deliver(server.send(ack), client) == [ack]

    assert deliver(client.send(Ping(7)), server) == [Ping(7)]
    assert deliver(server.send(Pong(7)), client) == [Pong(7)]
    assert deliver(server.send(Ping(8)), client) == [Ping(8)]
    assert deliver(client.send(Pong(8)), server) == [Pong(8)]

    status = StatusUpdate(Status.LIMITED, Privilege.NONE, 99)
    assert deliver(server.send(status), client) == [status]

    # Several messages in one write come out as several events, in order.
    batch = [Publish(2, "a"), Publish(3, "b", b"\x00" * limits.MAX_EVENT_DATA), Ping(9)]
    assert deliver(b"".join(client.send(m) for m in batch), server) == batch
    acks = [PublishAck(2), PublishAck(3, AckResult.SLOW_DOWN)]
    assert deliver(b"".join(server.send(m) for m in acks), client) == acks

    bye = Goodbye(CloseReason.NORMAL, "rebooting")
    assert deliver(client.send(bye), server) == [bye]
    assert state(client) is State.CLOSED and state(server) is State.CLOSED
    assert isinstance(server.next_event(), ConnectionClosed)
    assert isinstance(client.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        client.send(Ping(10))
    with pytest.raises(LocalProtocolError):
        server.send(Goodbye(CloseReason.NORMAL))


def test_server_goodbye_closes_both() -> None:
    pair = handshake()
    bye = Goodbye(CloseReason.SERVER_SHUTDOWN, "maintenance")
    assert deliver(pair.server.send(bye), pair.client) == [bye]
    assert state(pair.client) is State.CLOSED and state(pair.server) is State.CLOSED


def test_server_may_say_goodbye_before_ready() -> None:
    pair = handshake(ready=False)
    bye = Goodbye(CloseReason.REPLACED)
    assert deliver(pair.server.send(bye), pair.client) == [bye]
    assert state(pair.client) is State.CLOSED
    with pytest.raises(LocalProtocolError):
        pair.client.send(Ready())


def test_ready_and_first_messages_pipelined_in_one_write() -> None:
    pair = handshake(ready=False)
    data = pair.client.send(Ready()) + pair.client.send(Publish(1, "boot"))
    assert deliver(data, pair.server) == [Ready(), Publish(1, "boot")]
    assert state(pair.server) is State.OPEN


@FAST
@given(st.lists(device_messages, max_size=6), st.lists(server_messages, max_size=6))
def test_any_message_sequence_arrives_unchanged(up: list[Message], down: list[Message]) -> None:
    pair = handshake(server=new_server(rx_max_frame=limits.SERVER_RX_MAX_FRAME))
    sent_up = b"".join(pair.client.send(m) for m in up)
    sent_down = b"".join(pair.server.send(m) for m in down)
    assert (deliver(sent_up, pair.server) if sent_up else []) == up
    assert (deliver(sent_down, pair.client) if sent_down else []) == down


def test_refusal() -> None:
    client = new_client()
    server = new_server()
    assert deliver(client.send(make_hello()), server) == [make_hello()]
    refusal = server.refuse()
    assert refusal == REFUSAL_FRAME
    assert state(server) is State.CLOSED
    events = deliver(refusal, client)
    assert len(events) == 1 and isinstance(events[0], Refused)
    assert state(client) is State.CLOSED
    assert isinstance(client.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        client.send(Ping(1))


def test_refusal_before_hello_and_refuse_misuse() -> None:
    server = new_server()
    assert server.refuse() == REFUSAL_FRAME
    with pytest.raises(LocalProtocolError):
        server.refuse()  # already closed
    pair = handshake(ready=False)
    with pytest.raises(LocalProtocolError):
        pair.server.refuse()  # the handshake completed
    with pytest.raises(LocalProtocolError):
        pair.client.refuse()  # a device does not refuse


def test_server_waits_while_deciding() -> None:
    client, server = new_client(), new_server()
    assert deliver(client.send(make_hello()), server) == [make_hello()]
    assert state(server) is State.DECIDING
    assert server.next_event() is NEED_DATA
    close(server)
    assert server.next_event() is NEED_DATA  # nothing is read until we decide


def test_replayed_message1_cannot_be_confirmed() -> None:
    """Message 1 is replayable (the counter check is the server's job), but a replayer cannot
    read the Welcome nor produce a Ready under the new session keys."""
    client = new_client()
    message1 = client.send(make_hello())
    server = new_server()
    assert deliver(message1, server) == [make_hello()]
    deliver(server.send(make_welcome()), client)
    old_ready = client.send(Ready())

    replay_server = new_server(deterministic=False)
    assert deliver(message1, replay_server) == [make_hello()]
    replay_server.send(make_welcome())
    replay_server.receive_data(old_ready)
    raises_remote(replay_server, CloseReason.DECRYPT_FAILED)


# ---------------------------------------------------------------------------- chunking


@dataclass(frozen=True)
class Transcript:
    client_bytes: bytes
    server_bytes: bytes
    server_events: list[object]
    client_events: list[object]


def record_transcript() -> Transcript:
    client, server = new_client(), new_server()
    up: list[bytes] = []
    down: list[bytes] = []
    server_events: list[Event] = []
    client_events: list[Event] = []

    def c(*messages: Message) -> None:
        data = b"".join(client.send(m) for m in messages)
        up.append(data)
        server_events.extend(deliver(data, server))

    def s(*messages: Message) -> None:
        data = b"".join(server.send(m) for m in messages)
        down.append(data)
        client_events.extend(deliver(data, client))

    c(make_hello())
    s(make_welcome())
    c(Ready(), Publish(1, "boot", b"v7"), Ping(1))
    s(PublishAck(1), Pong(1), Ping(70), StatusUpdate(Status.QUARANTINED, Privilege.NONE, 4242))
    c(Pong(70), Publish(2, "temp", bytes(range(256)) * 3, ttl=5, private=False))
    s(PublishAck(2, AckResult.SLOW_DOWN))
    c(Goodbye(CloseReason.NORMAL, "done"))
    client_events.extend(close(client))
    return Transcript(b"".join(up), b"".join(down), comparable(server_events), comparable(client_events))


@functools.cache
def transcript() -> Transcript:
    return record_transcript()


def replay(conn: Connection, pieces: Sequence[bytes], react: Callable[[Event], None], eof: bool) -> list[object]:
    events: list[Event] = []
    for piece in pieces:
        if state(conn) is State.CLOSED:
            break
        conn.receive_data(piece)
        # A reaction (sending Welcome or Ready) can unblock bytes already buffered.
        while state(conn) is not State.CLOSED and (more := drain(conn)):
            for event in more:
                events.append(event)
                react(event)
    if eof and state(conn) is not State.CLOSED:
        events.extend(close(conn))
    return comparable(events)


def replay_to_server(pieces: Sequence[bytes]) -> list[object]:
    server = new_server()

    def react(event: Event) -> None:
        if isinstance(event, Hello):
            server.send(make_welcome())

    return replay(server, pieces, react, eof=False)


def replay_to_client(pieces: Sequence[bytes]) -> list[object]:
    client = new_client()
    assert transcript().client_bytes.startswith(client.send(make_hello()))

    def react(event: Event) -> None:
        if isinstance(event, Welcome):
            client.send(Ready())

    return replay(client, pieces, react, eof=True)


def test_transcript_is_deterministic_and_complete() -> None:
    t = transcript()
    again = record_transcript()
    assert (again.client_bytes, again.server_bytes) == (t.client_bytes, t.server_bytes)
    assert t.server_events == [
        make_hello(),
        Ready(),
        Publish(1, "boot", b"v7"),
        Ping(1),
        Pong(70),
        Publish(2, "temp", bytes(range(256)) * 3, ttl=5, private=False),
        Goodbye(CloseReason.NORMAL, "done"),
    ]
    assert t.client_events == [
        make_welcome(),
        PublishAck(1),
        Pong(1),
        Ping(70),
        StatusUpdate(Status.QUARANTINED, Privilege.NONE, 4242),
        PublishAck(2, AckResult.SLOW_DOWN),
        ConnectionClosed,
    ]


@pytest.mark.parametrize("split", ["whole", "byte_at_a_time"])
def test_whole_vs_byte_at_a_time(split: str) -> None:
    t = transcript()

    def cut(data: bytes) -> list[bytes]:
        return [data] if split == "whole" else byte_at_a_time(data)

    assert replay_to_server(cut(t.client_bytes)) == t.server_events
    assert replay_to_client(cut(t.server_bytes)) == t.client_events


@FAST
@given(st.data())
def test_random_splits_give_the_same_events(data: st.DataObject) -> None:
    t = transcript()
    up_cuts = data.draw(st.lists(st.integers(1, len(t.client_bytes) - 1), max_size=40))
    down_cuts = data.draw(st.lists(st.integers(1, len(t.server_bytes) - 1), max_size=40))
    assert replay_to_server(chunks(t.client_bytes, up_cuts)) == t.server_events
    assert replay_to_client(chunks(t.server_bytes, down_cuts)) == t.client_events


# ---------------------------------------------------------------------------- hostile bytes

split_points = st.lists(st.integers(0, 1000), max_size=8)


@THOROUGH
@given(st.binary(max_size=600), split_points, st.booleans())
def test_random_bytes_to_a_fresh_server(data: bytes, cuts: list[int], eof: bool) -> None:
    events = feed_untrusted(new_server(), chunks(data, cuts), eof=eof)
    assert all(isinstance(e, ConnectionClosed) for e in events)


@THOROUGH
@given(
    st.binary(max_size=limits.MAX_HELLO_FRAME + 10),
    st.integers(0, limits.MAX_HELLO_FRAME),
    st.booleans(),
    split_points,
    st.booleans(),
)
def test_random_bytes_after_the_preamble(
    body: bytes, length: int, with_header: bool, cuts: list[int], eof: bool
) -> None:
    data = PREAMBLE + (length_header(length) if with_header else b"") + body
    events = feed_untrusted(new_server(), chunks(data, cuts), eof=eof)
    assert all(isinstance(e, ConnectionClosed) for e in events)


@THOROUGH
@given(st.integers(min_value=0), st.integers(0, 255), st.booleans())
def test_corrupted_message1_gives_hello_or_remote_error(position: int, value: int, eof: bool) -> None:
    data = bytearray(new_client().send(make_hello()))
    data[position % len(data)] = value
    events = comparable(feed_untrusted(new_server(), [bytes(data)], eof=eof))
    assert events in ([], [make_hello()], [ConnectionClosed])
    if events == [make_hello()]:  # only the untouched message authenticates
        assert bytes(data) == new_client().send(make_hello())


@FAST
@given(st.binary(max_size=500), split_points, st.booleans())
def test_random_bytes_to_a_client_awaiting_welcome(data: bytes, cuts: list[int], eof: bool) -> None:
    client = new_client()
    client.send(make_hello())
    events = feed_untrusted(client, chunks(data, cuts), eof=eof)
    assert all(isinstance(e, Refused | ConnectionClosed) for e in events)


@THOROUGH
@given(st.binary(min_size=1, max_size=600), split_points, st.booleans(), st.booleans())
def test_random_bytes_after_a_valid_handshake(data: bytes, cuts: list[int], to_server: bool, eof: bool) -> None:
    pair = handshake()
    conn = pair.server if to_server else pair.client
    events = feed_untrusted(conn, chunks(data, cuts), eof=eof)
    assert all(isinstance(e, ConnectionClosed) for e in events)  # nothing authenticates


@THOROUGH
@given(
    st.lists(
        st.binary(max_size=120) | st.builds(lambda k, v: pack([k, *v]), st.integers(0, 0x2F), st.lists(msgpack_values)),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_authenticated_garbage_gives_events_or_remote_error(plaintexts: list[bytes], to_server: bool) -> None:
    """A peer that holds the session keys but sends arbitrary plaintexts: the decoder and the
    state machine must still answer with events or RemoteProtocolError only."""
    pair = handshake()
    sender, receiver = (pair.client, pair.server) if to_server else (pair.server, pair.client)
    frames = [forge_plaintext(sender, p) for p in plaintexts]
    feed_untrusted(receiver, frames, eof=True)


# ---------------------------------------------------------------------------- handshake faults


def test_wrong_server_key_fails_message1() -> None:
    client = new_client(server_public_key=OTHER_KEY.public)
    server = new_server()
    server.receive_data(client.send(make_hello()))
    raises_remote(server, CloseReason.AUTH_FAILED)
    # The device sees only the bare refusal.
    assert server.refuse() == REFUSAL_FRAME
    assert comparable(deliver(REFUSAL_FRAME, client)) == [Refused]


def test_unknown_client_key_still_completes_the_noise_handshake() -> None:
    """Whether the device's key is known is the server's decision, not the Connection's."""
    pair = handshake(client=new_client(static_key=OTHER_KEY))
    assert pair.server.remote_static_key == OTHER_KEY.public


@pytest.mark.parametrize("magic", [b"GF", b"\x00\x00", b"HT"])
def test_bad_preamble_magic(magic: bytes) -> None:
    data = new_client().send(make_hello())
    server = new_server()
    server.receive_data(magic + data[2:])
    raises_remote(server, CloseReason.PROTOCOL_ERROR)


@pytest.mark.parametrize("version", [0, limits.PROTOCOL_VERSION + 1, 0xFFFF])
def test_other_protocol_version(version: int) -> None:
    data = new_client().send(make_hello())
    server = new_server()
    server.receive_data(MAGIC + version.to_bytes(2, "big") + data[4:])
    error = raises_remote(server, CloseReason.UNSUPPORTED_VERSION)
    assert str(version) in str(error)


def test_preamble_is_checked_before_the_frame_arrives() -> None:
    server = new_server()
    server.receive_data(b"FG\x00")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\x09")
    raises_remote(server, CloseReason.UNSUPPORTED_VERSION)


def message1(payload: bytes, prologue: bytes = prologue_for(PREAMBLE)) -> bytes:
    hs = HandshakeIK(initiator=True, static=DEVICE_KEY, remote_static=SERVER_KEY.public, prologue=prologue)
    return PREAMBLE + encode_frame(hs.write_message_1(payload))


def test_prologue_binds_the_version() -> None:
    """A message 1 made for another version cannot be passed off under ours."""
    other = MAGIC + (limits.PROTOCOL_VERSION + 1).to_bytes(2, "big")
    server = new_server()
    server.receive_data(message1(encode_message(make_hello()), prologue_for(other)))
    raises_remote(server, CloseReason.AUTH_FAILED)


def test_message1_carrying_another_message() -> None:
    server = new_server()
    server.receive_data(message1(encode_message(Ping(1))))
    raises_remote(server, CloseReason.UNEXPECTED_MESSAGE)


def test_message1_carrying_garbage() -> None:
    server = new_server()
    server.receive_data(message1(b"\xc1"))
    raises_remote(server, CloseReason.MESSAGE_INVALID)


@pytest.mark.parametrize("length", [0, 1, 95])
def test_short_or_empty_message1(length: int) -> None:
    server = new_server()
    server.receive_data(PREAMBLE + length_header(length) + bytes(length))
    reason = CloseReason.PROTOCOL_ERROR if length == 0 else CloseReason.AUTH_FAILED
    raises_remote(server, reason)


@pytest.mark.parametrize("offset", [0, 40, 100, -1])
def test_tampered_message1(offset: int) -> None:
    data = bytearray(new_client().send(make_hello()))
    data[offset if offset < 0 else 6 + offset] ^= 0x01
    server = new_server()
    server.receive_data(bytes(data))
    raises_remote(server, CloseReason.AUTH_FAILED)


@pytest.mark.parametrize("offset", [0, 33, -1])
def test_tampered_message2(offset: int) -> None:
    client, server = new_client(), new_server()
    deliver(client.send(make_hello()), server)
    data = bytearray(server.send(make_welcome()))
    data[offset if offset < 0 else HEADER + offset] ^= 0x80
    client.receive_data(bytes(data))
    raises_remote(client, CloseReason.AUTH_FAILED)


def test_message2_carrying_another_message() -> None:
    client = new_client()
    data = client.send(make_hello())
    responder = HandshakeIK(initiator=False, static=SERVER_KEY, prologue=prologue_for(PREAMBLE))
    responder.read_message_1(data[len(PREAMBLE) + HEADER :])
    client.receive_data(encode_frame(responder.write_message_2(encode_message(Ping(1)))))
    raises_remote(client, CloseReason.UNEXPECTED_MESSAGE)


def test_oversize_frame_during_handshake_refused_before_buffering() -> None:
    server = new_server()
    server.receive_data(PREAMBLE + length_header(limits.MAX_HELLO_FRAME))
    assert server.next_event() is NEED_DATA  # exactly the limit: wait for the body

    server = new_server()
    server.receive_data(PREAMBLE)
    assert server.next_event() is NEED_DATA
    server.receive_data(length_header(limits.MAX_HELLO_FRAME + 1))
    raises_remote(server, CloseReason.FRAME_TOO_LARGE)
    assert server._decoder.buffered == HEADER

    client = new_client()
    client.send(make_hello())
    client.receive_data(length_header(limits.MAX_WELCOME_FRAME + 1))
    raises_remote(client, CloseReason.FRAME_TOO_LARGE)
    assert client._decoder.buffered == HEADER


def test_frame_limit_grows_to_rx_max_frame_after_the_handshake() -> None:
    pair = handshake()
    pair.server.receive_data(length_header(limits.SERVER_RX_MAX_FRAME))
    assert pair.server.next_event() is NEED_DATA
    pair = handshake()
    pair.server.receive_data(length_header(limits.SERVER_RX_MAX_FRAME + 1))
    raises_remote(pair.server, CloseReason.FRAME_TOO_LARGE)
    assert pair.server._decoder.buffered == HEADER
    pair.client.receive_data(length_header(pair.client.rx_max_frame + 1))
    raises_remote(pair.client, CloseReason.FRAME_TOO_LARGE)


# ---------------------------------------------------------------------------- sequence faults


def test_message_before_ready() -> None:
    pair = handshake(ready=False)
    pair.server.receive_data(forge(pair.client, Publish(1, "early")))
    error = raises_remote(pair.server, CloseReason.UNEXPECTED_MESSAGE)
    assert "before Ready" in str(error)


@pytest.mark.parametrize(
    "message",
    [
        PublishAck(1),
        StatusUpdate(Status.OK, Privilege.all(), 1),
        make_hello(),
        make_welcome(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_server_only_or_handshake_message_from_the_device(message: Message) -> None:
    pair = handshake()
    pair.server.receive_data(forge(pair.client, message))
    raises_remote(pair.server, CloseReason.UNEXPECTED_MESSAGE)


@pytest.mark.parametrize(
    "message", [Publish(1, "x"), Ready(), make_hello(), make_welcome()], ids=lambda m: type(m).__name__
)
def test_device_only_or_handshake_message_from_the_server(message: Message) -> None:
    pair = handshake()
    pair.client.receive_data(forge(pair.server, message))
    raises_remote(pair.client, CloseReason.UNEXPECTED_MESSAGE)


def test_second_ready_from_the_device() -> None:
    pair = handshake()
    pair.server.receive_data(forge(pair.client, Ready()))
    raises_remote(pair.server, CloseReason.UNEXPECTED_MESSAGE)


@pytest.mark.parametrize(
    ("role", "message"),
    [
        (Role.CLIENT, PublishAck(1)),
        (Role.CLIENT, StatusUpdate(Status.OK, Privilege.NONE, None)),
        (Role.CLIENT, make_welcome()),
        (Role.CLIENT, make_hello()),
        (Role.SERVER, Publish(1, "x")),
        (Role.SERVER, Ready()),
        (Role.SERVER, make_hello()),
        (Role.SERVER, make_welcome()),
    ],
    ids=lambda v: v.value if isinstance(v, Role) else type(v).__name__,
)
def test_direction_misuse_on_send(role: Role, message: Message) -> None:
    pair = handshake()
    conn = pair.client if role is Role.CLIENT else pair.server
    with pytest.raises(LocalProtocolError):
        conn.send(message)
    assert state(conn) is State.OPEN


def test_send_out_of_order() -> None:
    client, server = new_client(), new_server()
    with pytest.raises(LocalProtocolError):
        client.send(Ping(1))  # no session yet
    with pytest.raises(LocalProtocolError):
        client.send(Ready())
    with pytest.raises(LocalProtocolError):
        server.send(make_welcome())  # no Hello yet
    with pytest.raises(LocalProtocolError):
        client.send(make_hello(rx_max_frame=client.rx_max_frame + 1))
    deliver(client.send(make_hello()), server)
    with pytest.raises(LocalProtocolError):
        client.send(make_hello())  # only once
    with pytest.raises(LocalProtocolError):
        client.send(Goodbye(CloseReason.NORMAL))  # no keys yet
    with pytest.raises(LocalProtocolError):
        server.send(Ping(1))  # still deciding
    with pytest.raises(LocalProtocolError):
        server.send(make_welcome(rx_max_frame=server.rx_max_frame + 1))
    deliver(server.send(make_welcome()), client)
    with pytest.raises(LocalProtocolError):
        server.send(make_welcome())  # only once
    with pytest.raises(LocalProtocolError):
        server.send(Ping(1))  # not before Ready
    with pytest.raises(LocalProtocolError):
        client.send(Publish(1, "x"))  # Ready first
    assert deliver(client.send(Ready()), server) == [Ready()]


def test_invalid_message_refused_on_send() -> None:
    pair = handshake()
    with pytest.raises(LocalProtocolError):
        pair.client.send(Publish(1, "n" * (limits.MAX_EVENT_NAME + 1)))
    assert deliver(pair.client.send(Ping(1)), pair.server) == [Ping(1)]


def test_constructor_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        Connection(Role.CLIENT, DEVICE_KEY)  # no pinned server key
    with pytest.raises(LocalProtocolError):
        new_server(rx_max_frame=limits.MIN_RX_FRAME - 1)
    with pytest.raises(LocalProtocolError):
        new_client(rx_max_frame=limits.NOISE_MAX_MESSAGE + 1)


def _publish_with_frame_size(size: int) -> Publish:
    for n in range(limits.MAX_EVENT_DATA + 1):
        publish = Publish(1, "n", b"x" * n)
        if len(encode_message(publish)) + limits.TAG_LEN == size:
            return publish
    raise AssertionError(f"no Publish makes a {size}-byte frame")


def test_frame_larger_than_the_peer_limit_cannot_be_sent() -> None:
    pair = handshake(server=new_server(rx_max_frame=limits.MIN_RX_FRAME))
    assert pair.client.peer_rx_max_frame == limits.MIN_RX_FRAME
    fits = _publish_with_frame_size(limits.MIN_RX_FRAME)
    assert deliver(pair.client.send(fits), pair.server) == [fits]
    with pytest.raises(LocalProtocolError):
        pair.client.send(_publish_with_frame_size(limits.MIN_RX_FRAME + 1))
    with pytest.raises(LocalProtocolError):
        pair.client.send(Publish(2, "big", b"x" * limits.MAX_EVENT_DATA))


def test_refused_oversize_send_leaves_the_connection_usable() -> None:
    pair = handshake(server=new_server(rx_max_frame=limits.MIN_RX_FRAME))
    with pytest.raises(LocalProtocolError):
        pair.client.send(Publish(1, "big", b"x" * limits.MAX_EVENT_DATA))
    assert state(pair.client) is State.OPEN
    assert deliver(pair.client.send(Ping(1)), pair.server) == [Ping(1)]


def test_second_ready_refused_on_send() -> None:
    pair = handshake()
    with pytest.raises(LocalProtocolError):
        pair.client.send(Ready())


def test_goodbye_before_ready_is_consistent() -> None:
    pair = handshake(ready=False)
    bye = Goodbye(CloseReason.CLIENT_ERROR, "bad welcome")
    try:
        data = pair.client.send(bye)
    except LocalProtocolError:
        return  # fixed on the sending side
    assert deliver(data, pair.server) == [bye]  # or fixed on the receiving side


def test_invalid_goodbye_does_not_close_the_connection() -> None:
    pair = handshake()
    with pytest.raises(LocalProtocolError):
        pair.client.send(Goodbye(CloseReason.NORMAL, "x" * (limits.MAX_TEXT_LEN + 1)))
    bye = Goodbye(CloseReason.NORMAL)
    assert deliver(pair.client.send(bye), pair.server) == [bye]


# ---------------------------------------------------------------------------- end of stream


def test_eof_between_frames_is_a_clean_close() -> None:
    assert comparable(close(new_server())) == [ConnectionClosed]
    pair = handshake()
    assert comparable(close(pair.server)) == [ConnectionClosed]
    assert state(pair.server) is State.CLOSED
    assert comparable(close(pair.client)) == [ConnectionClosed]
    client = new_client()
    client.send(make_hello())
    assert comparable(close(client)) == [ConnectionClosed]  # server hung up, no refusal


def test_eof_mid_frame() -> None:
    pair = handshake()
    data = pair.client.send(Ping(1))
    pair.server.receive_data(data[:-1])
    assert pair.server.next_event() is NEED_DATA
    pair.server.receive_data(b"")
    raises_remote(pair.server, CloseReason.PROTOCOL_ERROR)


def test_eof_right_after_the_preamble_is_a_clean_close() -> None:
    server = new_server()
    server.receive_data(PREAMBLE)
    assert server.next_event() is NEED_DATA
    assert comparable(close(server)) == [ConnectionClosed]


@pytest.mark.parametrize("cut", [1, 3, 5, 6, 50])
def test_eof_mid_preamble_or_message1(cut: int) -> None:
    server = new_server()
    server.receive_data(new_client().send(make_hello())[:cut])
    assert server.next_event() is NEED_DATA
    server.receive_data(b"")
    raises_remote(server, CloseReason.PROTOCOL_ERROR)


def test_data_after_eof_is_local_misuse() -> None:
    server = new_server()
    server.receive_data(b"")
    server.receive_data(b"")  # repeating EOF is harmless
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"x")


# ---------------------------------------------------------------------------- transport faults


@pytest.mark.parametrize("position", [HEADER, HEADER + 1, -1])
def test_tampered_ciphertext(position: int) -> None:
    pair = handshake()
    data = bytearray(pair.client.send(Publish(1, "temp", b"21")))
    data[position] ^= 0x04
    pair.server.receive_data(bytes(data))
    raises_remote(pair.server, CloseReason.DECRYPT_FAILED)


def test_replayed_and_reordered_frames() -> None:
    pair = handshake()
    first, second = pair.client.send(Ping(1)), pair.client.send(Ping(2))
    assert deliver(first, pair.server) == [Ping(1)]
    pair.server.receive_data(first)
    raises_remote(pair.server, CloseReason.DECRYPT_FAILED)

    pair = handshake()
    first, second = pair.client.send(Ping(1)), pair.client.send(Ping(2))
    pair.server.receive_data(second)
    raises_remote(pair.server, CloseReason.DECRYPT_FAILED)


def test_empty_transport_frame() -> None:
    pair = handshake()
    pair.client.receive_data(REFUSAL_FRAME)
    raises_remote(pair.client, CloseReason.PROTOCOL_ERROR)


@pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT], ids=lambda r: r.value)
def test_after_a_remote_error_only_goodbye(role: Role) -> None:
    pair = handshake()
    victim, peer = (pair.server, pair.client) if role is Role.SERVER else (pair.client, pair.server)
    data = bytearray(peer.send(Ping(1)))
    data[-1] ^= 0xFF
    victim.receive_data(bytes(data))
    error = raises_remote(victim, CloseReason.DECRYPT_FAILED)

    for _ in range(2):
        with pytest.raises(RemoteProtocolError) as again:
            victim.next_event()
        assert again.value is error
    victim.receive_data(peer.send(Ping(2)))  # later bytes change nothing
    with pytest.raises(RemoteProtocolError) as again:
        victim.next_event()
    assert again.value is error

    with pytest.raises(LocalProtocolError):
        victim.send(Ping(3))
    with pytest.raises(LocalProtocolError):
        victim.send(Pong(3))
    assert state(victim) is State.ERROR

    bye = Goodbye(error.reason, "tag mismatch")
    assert deliver(victim.send(bye), peer) == [bye]
    assert state(victim) is State.CLOSED
    with pytest.raises(RemoteProtocolError) as again:
        victim.next_event()
    assert again.value is error
    with pytest.raises(LocalProtocolError):
        victim.send(bye)


def test_error_during_handshake_is_sticky_and_refusable() -> None:
    server = new_server()
    server.receive_data(b"XX\x00\x01")
    error = raises_remote(server, CloseReason.PROTOCOL_ERROR)
    with pytest.raises(LocalProtocolError):
        server.send(Goodbye(CloseReason.PROTOCOL_ERROR))  # no session keys to say it with
    assert server.refuse() == REFUSAL_FRAME
    with pytest.raises(RemoteProtocolError) as again:
        server.next_event()
    assert again.value is error


def test_deeply_nested_transport_message() -> None:
    pair = handshake()
    plaintext = b"\x92\x04" + b"\x91" * 1020 + b"\x00"  # [PING, [[[...0...]]]]
    assert len(plaintext) + limits.TAG_LEN <= limits.SERVER_RX_MAX_FRAME
    pair.server.receive_data(forge_plaintext(pair.client, plaintext))
    raises_remote(pair.server, CloseReason.MESSAGE_INVALID)


def test_need_data_is_a_singleton() -> None:
    assert isinstance(NEED_DATA, NeedData)
    assert repr(NEED_DATA) == "NEED_DATA"
    assert repr(Refused()) == "Refused()" and repr(ConnectionClosed()) == "ConnectionClosed()"
