"""Connection.next_events: one read's frames decoded in one call give exactly what next_event gives
one at a time: the same events in the same order, the same protocol error after them, the same state."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codes import CloseReason
from protocol.connection import Connection, ConnectionClosed, Event, NeedData, State
from protocol.errors import RemoteProtocolError
from protocol.messages import Goodbye, Message, Ping, Publish

from .helpers import (
    THOROUGH,
    chunks,
    comparable,
    device_messages,
    forge_plaintext,
    handshake,
    msgpack_values,
    pack,
    state,
)

Outcome = tuple[list[object], CloseReason | None, State]


def one_at_a_time(conn: Connection, events: list[Event]) -> None:
    while state(conn) is not State.CLOSED and not isinstance(event := conn.next_event(), NeedData):
        events.append(event)


def batched(conn: Connection, events: list[Event]) -> None:
    events += conn.next_events()
    assert state(conn) in (State.CLOSED, State.ERROR) or conn.next_events() == []


def feed(
    conn: Connection, pieces: Sequence[bytes], eof: bool, take: Callable[[Connection, list[Event]], None]
) -> Outcome:
    events: list[Event] = []
    try:
        for piece in [*pieces, *([b""] if eof else [])]:
            if state(conn) is State.CLOSED:
                break
            conn.receive_data(piece)
            take(conn, events)
        if state(conn) is State.ERROR:
            take(conn, events)  # a kept error is raised by the next call
    except RemoteProtocolError as exc:
        assert state(conn) is State.ERROR
        return comparable(events), exc.reason, state(conn)
    return comparable(events), None, state(conn)


# A frame the device may send, or one a buggy device holding the keys could: authenticated garbage.
garbage = st.binary(max_size=60) | st.builds(lambda k, v: pack([k, *v]), st.integers(0, 0x2F), st.lists(msgpack_values))
frames = st.lists(st.tuples(st.booleans(), device_messages, garbage), max_size=12)


@THOROUGH
@given(frames, st.lists(st.integers(1, 4000), max_size=6), st.booleans(), st.binary(max_size=3))
def test_batch_gives_what_one_at_a_time_gives(
    planned: list[tuple[bool, Message, bytes]], cuts: list[int], eof: bool, tail: bytes
) -> None:
    # Two sessions with the same keys (the handshake is deterministic): one decodes one event at a
    # time, the other a batch per read, from the same bytes.
    single, batch = handshake(), handshake()
    wire = b"".join(
        single.client.send(message) if valid else forge_plaintext(single.client, plaintext)
        for valid, message, plaintext in planned
    )
    wire += tail  # a partial frame header, or a frame that never completes
    pieces = [piece for piece in chunks(wire, cuts) if piece]
    assert feed(single.server, pieces, eof, one_at_a_time) == feed(batch.server, pieces, eof, batched)


def test_events_before_a_bad_frame_come_first_then_the_error_sticks() -> None:
    pair = handshake()
    wire = pair.client.send(Ping(1)) + pair.client.send(Publish(1, "t", b"x")) + forge_plaintext(pair.client, b"\xc1")
    pair.server.receive_data(wire)
    assert pair.server.next_events() == [Ping(1), Publish(1, "t", b"x")]
    assert state(pair.server) is State.ERROR
    with pytest.raises(RemoteProtocolError) as first:
        pair.server.next_events()
    with pytest.raises(RemoteProtocolError) as again:
        pair.server.next_event()
    assert again.value is first.value


def test_a_batch_ends_with_goodbye() -> None:
    pair = handshake()
    bye = Goodbye(CloseReason.NORMAL, "done")
    wire = pair.client.send(Ping(1)) + pair.client.send(bye)
    pair.server.receive_data(wire)
    assert pair.server.next_events() == [Ping(1), bye]
    assert state(pair.server) is State.CLOSED
    assert comparable(pair.server.next_events()) == [ConnectionClosed]  # as next_event says after the end


def test_need_data_is_an_empty_batch() -> None:
    pair = handshake()
    wire = pair.client.send(Ping(7))
    pair.server.receive_data(wire[:-1])
    assert pair.server.next_events() == []
    pair.server.receive_data(wire[-1:])
    assert pair.server.next_events() == [Ping(7)]
