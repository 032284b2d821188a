"""A HELLO that arrived in time, read after the first-message deadline has passed.

The first-message deadline judges the peer, not the server: in a reconnect storm a session may
first run a second or more after its accept (thousands of handshakes share the CPU), with the
device's HELLO in the kernel's buffer all along. So when the deadline passes, what had arrived by
then is read without waiting; only a HELLO still incomplete sheds the connection.
"""

from __future__ import annotations

import os

import trio

from protocol.connection import Connection, Event, NeedData


def read_ready(stream: trio.abc.Stream, max_bytes: int) -> bytes | None:
    """What the kernel holds for us now, without waiting: None if nothing (or not a socket); b""
    at the end of the stream or after a reset."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return None
    try:
        return os.read(sock.fileno(), max_bytes)  # trio's sockets are non-blocking
    except BlockingIOError:
        return None
    except OSError:
        return b""


def arrived_event(conn: Connection, stream: trio.abc.Stream, max_bytes: int) -> Event | None:
    """The next event from what has arrived so far (read without waiting); None if incomplete.
    May raise RemoteProtocolError, as Connection.receive_data does."""
    while isinstance(event := conn.next_event(), NeedData):
        data = read_ready(stream, max_bytes)
        if data is None:
            return None
        conn.receive_data(data)
    return event
