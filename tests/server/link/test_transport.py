"""link/transport.py without a network: the one exception-to-close-reason mapping, the bounded outbox."""

from __future__ import annotations

import trio
import trio.testing

from protocol.codes import CloseReason
from protocol.connection import Connection, Role
from protocol.errors import RemoteProtocolError
from protocol.messages import Ping
from protocol.noise import KeyPair
from server.link.state import LinkState
from server.link.transport import Transport, close_reason_for
from server.store import StoreClosed


def test_a_protocol_error_closes_with_the_reason_it_names() -> None:
    exc = RemoteProtocolError("frame too large", CloseReason.FRAME_TOO_LARGE)
    assert close_reason_for(exc) == (CloseReason.FRAME_TOO_LARGE, "frame too large")


def test_a_broken_or_closed_stream_is_a_lost_connection_named_by_its_message_or_type() -> None:
    assert close_reason_for(trio.BrokenResourceError("reset")) == (CloseReason.CONNECTION_LOST, "reset")
    assert close_reason_for(trio.ClosedResourceError()) == (CloseReason.CONNECTION_LOST, "ClosedResourceError")


def test_a_closing_store_is_the_servers_shutdown() -> None:
    assert close_reason_for(StoreClosed()) == (CloseReason.SERVER_SHUTDOWN, "the store is closing")


def transport(send_queue: int = 2) -> Transport:
    stream, _ = trio.testing.memory_stream_pair()
    conn = Connection(Role.SERVER, KeyPair.generate(), rx_max_frame=65535)
    return Transport(stream, conn, LinkState(), send_queue=send_queue, write_timeout=1.0)


async def test_a_full_outbox_is_a_slow_consumer_and_cancels_the_link() -> None:
    link = transport(send_queue=2)
    link.scope = scope = trio.CancelScope()
    link.enqueue(Ping(1))
    link.enqueue(Ping(2))
    assert len(link.outbox) == 2 and not link.writing  # no nursery yet: they wait
    link.enqueue(Ping(3))
    assert scope.cancel_called
    assert (link.state.close_reason, link.state.close_detail) == (
        CloseReason.SLOW_CONSUMER,
        "outgoing queue of 2 is full",
    )
    assert len(link.outbox) == 2


async def test_nothing_is_queued_once_closing_and_the_first_reason_wins() -> None:
    link = transport()
    link.request_close(CloseReason.REPLACED, "newer")
    link.enqueue(Ping(1))
    link.failed(trio.BrokenResourceError("reset"))
    assert not link.outbox and link.broken
    assert (link.state.close_reason, link.state.close_detail) == (CloseReason.REPLACED, "newer")
