"""server/link/socket_reads.py: a socket's reads keep trio's semantics, over real socket pairs."""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from server.link.socket_reads import receive_some

Pair = tuple[trio.SocketStream, trio.SocketStream]  # ours, theirs


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    a, b = trio.socket.socketpair()
    ours, theirs = trio.SocketStream(a), trio.SocketStream(b)
    yield ours, theirs
    await ours.aclose()
    await theirs.aclose()


async def test_reads_what_arrived_and_waits_for_more(pair: Pair) -> None:
    ours, theirs = pair
    await theirs.send_all(b"hello")
    assert await receive_some(ours, 65536) == b"hello"
    async with trio.open_nursery() as nursery:
        got: list[bytes | bytearray] = []

        async def read() -> None:
            got.append(await receive_some(ours, 3))

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert not got  # parked until the peer writes
        await theirs.send_all(b"abcdef")
    assert got == [b"abc"]  # at most max_bytes
    assert await receive_some(ours, 65536) == b"def"


async def test_a_read_that_completes_at_once_is_still_a_checkpoint(
    pair: Pair,
) -> None:
    ours, theirs = pair
    await theirs.send_all(b"x")
    with trio.CancelScope() as scope:
        scope.cancel()
        await receive_some(ours, 10)
    assert scope.cancelled_caught
    assert await receive_some(ours, 10) == b"x"  # nothing was consumed by the cancelled read


async def test_the_peer_closing_is_an_empty_read(pair: Pair) -> None:
    ours, theirs = pair
    await theirs.aclose()
    assert await receive_some(ours, 10) == b""


async def test_closed_while_waiting_is_a_closed_resource(pair: Pair) -> None:
    ours, _theirs = pair
    raised: list[BaseException] = []

    async def read() -> None:
        try:
            await receive_some(ours, 10)
        except trio.ClosedResourceError as exc:
            raised.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        await ours.aclose()
    assert len(raised) == 1


async def test_reading_a_closed_socket_is_a_closed_resource(pair: Pair) -> None:
    ours, _theirs = pair
    await ours.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await receive_some(ours, 10)


async def test_a_reset_is_a_broken_resource() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    async with listener:
        theirs = await trio.open_tcp_stream("127.0.0.1", listener.socket.getsockname()[1])
        ours = await listener.accept()
        theirs.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await theirs.send_all(b"unread")  # unread input makes close() a reset as well
        theirs.socket.close()
        with pytest.raises(trio.BrokenResourceError):
            while await receive_some(ours, 65536):
                pass
        await ours.aclose()


async def test_other_streams_are_read_as_they_are() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    await theirs.send_all(b"memory")
    assert await receive_some(ours, 65536) == b"memory"
