"""One connection's socket: the only place device bytes meet a stream.

The transport speaks three things to its session (as hypercorn's tcp_server speaks RawData, Closed
and Updated to a protocol object), and the session never touches the stream:
  - events: `read_loop` hands every decoded event to the session's dispatch, in order;
  - closing: every way a link can fail becomes a typed close reason in one place (`close_reason_for`),
    written to the connection's LinkState, the first reason winning;
  - writes: the session calls `enqueue`, never waits; one writer task owns every write after the
    handshake and runs only while the bounded outbox holds something (an idle connection is one
    task). A device that does not read is closed (SLOW_CONSUMER), not buffered.
`close` says the last words the link still allows (the bare refusal before WELCOME, a GOODBYE after
it), lingers so they are read, and closes the stream.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable

import trio

from protocol import limits
from protocol.codes import CloseReason
from protocol.connection import Connection, Event, NeedData, State
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.messages import EventMessage, Goodbye, Message

from ..store import StoreClosed
from .send_buffers import SEND_BUFFERS
from .socket_reads import receive_some
from .state import LinkState

GOODBYE_TIMEOUT = 1.0  # seconds a closing session spends delivering its GOODBYE or refusal
IDLE_SLACK = 1.0  # seconds the idle deadline may run past idle_timeout (see read_loop)
LINGER_MAX_BYTES = 256 * 1024  # input discarded after our last words before we just close

# How a link fails: the stream, the device or the store.
LinkError = RemoteProtocolError | trio.BrokenResourceError | trio.ClosedResourceError | StoreClosed
Dispatch = Callable[[Event], Awaitable[None]]  # the session's handler of one event from the reader


def close_reason_for(exc: LinkError) -> tuple[CloseReason, str]:
    """The typed close reason and log detail for a failure that ends a link: the one mapping."""
    if isinstance(exc, RemoteProtocolError):
        return exc.reason, str(exc)  # the device broke the protocol; its error names the reason
    if isinstance(exc, StoreClosed):
        return CloseReason.SERVER_SHUTDOWN, "the store is closing"
    return CloseReason.CONNECTION_LOST, str(exc) or type(exc).__name__


_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


def abort_stream(stream: trio.abc.Stream) -> None:
    """Close a socket stream at once with a TCP reset: nothing said, nothing left lingering in the
    kernel (for connections shed before they spoke). Any other stream is left to its aclose."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


def peer_name(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    if sock is None:
        return "memory"
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "unknown"
    return f"{host}:{port}"


class Transport:
    # Slots: tens of thousands live at once (docs/BENCHMARKS.md, "hold").
    __slots__ = (
        "_write_timeout",
        "broken",
        "conn",
        "events_queued",
        "frames_in",
        "frames_out",
        "nursery",
        "outbox",
        "scope",
        "send_queue",
        "state",
        "stream",
        "writing",
    )  # fmt: skip

    def __init__(
        self, stream: trio.abc.Stream, conn: Connection, state: LinkState, send_queue: int, write_timeout: float
    ) -> None:
        self.stream = stream
        self.conn = conn
        self.state = state
        self.send_queue = send_queue
        self._write_timeout = write_timeout
        # What `request_close` cancels: the handshake's deadline, then the session nursery's scope
        # (whose deadline is the idle timeout).
        self.scope: trio.CancelScope | None = None
        self.nursery: trio.Nursery | None = None  # where the writer runs, once the session serves
        # Outgoing messages, at most send_queue. A writer task runs only while there is something
        # to write (`enqueue` starts it, it ends when the outbox is empty): never two writers.
        # A list, not a deque: the writer takes it whole, and an empty deque holds a 520-byte block
        # (~1 KiB of each idle connection, with the block `clear()` makes anew).
        self.outbox: list[Message] = []
        self.writing = False
        self.broken = False  # a write was cut short or failed: the stream takes no more writes
        self.events_queued = 0  # EVENTs in the outbox or being written (the session's delivery cap)
        self.frames_in = 0
        self.frames_out = 0

    # ------------------------------------------------------------------ closing

    def request_close(self, reason: CloseReason, detail: str = "") -> None:
        """End the link (replacement, shutdown, slow consumer): the first reason wins. Safe from any task."""
        self.state.set_close_reason(reason, detail)
        if self.scope is not None:
            self.scope.cancel()

    def failed(self, exc: LinkError) -> None:
        """Record why the link ended, from the exception that ended it."""
        if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
            self.broken = True
        self.state.set_close_reason(*close_reason_for(exc))

    # ------------------------------------------------------------------ reading

    async def next_event(self, max_bytes: int) -> Event:
        conn = self.conn
        while True:
            event = conn.next_event()
            if not isinstance(event, NeedData):
                if isinstance(event, Message):
                    self.frames_in += 1
                return event
            conn.receive_data(await self.stream.receive_some(max_bytes))

    async def read_loop(self, dispatch: Dispatch, receive_size: int, idle_timeout: float) -> None:
        """Reader: hands each event to `dispatch`, in order, until the link closes (no event
        is dispatched once a close reason is set). Errors end the session here (a nursery would
        wrap them in a group); events decoded before a protocol error are dispatched first."""
        state, conn, stream = self.state, self.conn, self.stream
        idle = self.scope  # the session nursery's scope: its deadline is the idle timeout
        assert idle is not None
        try:
            while state.close_reason is None:
                # `next_events` inlined, and the events popped as dispatched: while the connection
                # waits, its stack holds one coroutine frame fewer and no message it has dispatched.
                while not (events := conn.next_events()):
                    conn.receive_data(await receive_some(stream, receive_size))
                self.frames_in += sum(isinstance(event, Message) for event in events)
                # Moved at most once per IDLE_SLACK: each move re-sorts trio's deadline heap, and
                # a busy device sends thousands of frames a second. The timeout is T to T + slack.
                heard = trio.current_time() + idle_timeout
                if heard >= idle.deadline:
                    idle.deadline = heard + IDLE_SLACK
                events.reverse()
                while events:
                    if state.close_reason is not None:
                        return
                    await dispatch(events.pop())
        except (RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.failed(exc)

    # ------------------------------------------------------------------ writing

    async def send_now(self, data: bytes) -> None:
        """Write during the handshake, before the writer task exists (still one writer)."""
        self.frames_out += 1
        await self.stream.send_all(data)

    def enqueue(self, message: Message) -> None:
        """Queue a message for the writer without waiting; a full queue means a slow consumer."""
        if self.state.close_reason is not None:
            return  # the session is ending; nothing more goes out
        if len(self.outbox) >= self.send_queue:
            self.request_close(CloseReason.SLOW_CONSUMER, f"outgoing queue of {self.send_queue} is full")
            return
        self.outbox.append(message)
        self.start_writer()

    def start_writer(self) -> None:
        """Run the writer if there is work and none runs (before the nursery opens, messages wait).
        Once the session is closing none starts: its last words are `close`'s."""
        if self.outbox and not self.writing and self.nursery is not None and self.state.close_reason is None:
            self.writing = True
            self.nursery.start_soon(self._writer)

    async def _writer(self) -> None:
        """The only task that writes after the handshake: drains the outbox, then ends."""
        write_timeout = self._write_timeout
        try:
            while self.outbox:
                batch, self.outbox = self.outbox, []
                if self.conn.state is not State.OPEN:
                    return  # the device said goodbye (and the reader has set close_reason)
                # One reused buffer, frames sealed in place: an OTA window (~1 MiB) costs no
                # allocation, join or per-frame copy.
                buffer = SEND_BUFFERS.take()
                try:
                    with self.conn.send_batch_into(batch, buffer) as data, trio.move_on_after(write_timeout) as scope:
                        try:
                            # Until send_all returns, a cancel (timeout or close) may leave a
                            # partial frame on the wire: the stream then takes no more writes.
                            self.broken = True
                            await self.stream.send_all(data)
                            self.broken = False
                        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                            self.broken = True
                            self.request_close(CloseReason.CONNECTION_LOST, f"write failed: {exc}")
                            return
                finally:
                    SEND_BUFFERS.give(buffer)
                self.frames_out += len(batch)
                self.events_queued -= sum(isinstance(m, EventMessage) for m in batch)
                if scope.cancelled_caught:
                    self.request_close(CloseReason.SLOW_CONSUMER, f"a write took over {write_timeout:g} s")
                    return
        finally:
            # No await between the empty check and here: a message queued later starts a new writer.
            self.writing = False

    # ------------------------------------------------------------------ the end

    async def abort(self) -> None:
        """Close without a word (a connection that never sent its HELLO): a reset, no linger."""
        self.outbox.clear()
        abort_stream(self.stream)
        await trio.aclose_forcefully(self.stream)

    async def close(self, reason: CloseReason, decided: bool) -> None:
        """Our last words if the link still allows them, then the stream closed. `decided`: an
        admission decision was made (a refusal is no longer possible once WELCOME may be out)."""
        self.outbox.clear()
        if not self.broken:
            final = self._final_bytes(reason, decided)
            if final:
                with (
                    trio.move_on_after(GOODBYE_TIMEOUT),
                    contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
                ):
                    await self.stream.send_all(final)
                    await self._linger()
        await trio.aclose_forcefully(self.stream)

    async def _linger(self) -> None:
        """Half-close, then discard what the peer still sends for a moment: closing a socket
        with unread input makes the kernel send RST, which can destroy our last words
        before the device reads them."""
        if not isinstance(self.stream, trio.abc.HalfCloseableStream):
            return
        await self.stream.send_eof()
        discarded = 0
        while discarded < LINGER_MAX_BYTES and (chunk := await self.stream.receive_some(65536)):
            discarded += len(chunk)

    def _final_bytes(self, reason: CloseReason, decided: bool) -> bytes:
        """The refusal frame before WELCOME, a GOODBYE after it, or nothing."""
        state = self.conn.state
        if state in (State.AWAIT_HELLO, State.DECIDING) or (state is State.ERROR and not decided):
            if reason in (CloseReason.SERVER_SHUTDOWN, CloseReason.CONNECTION_LOST):
                return b""
            try:
                return self.conn.refuse()
            except LocalProtocolError:
                return b""
        if reason is CloseReason.CONNECTION_LOST or state is State.CLOSED:
            return b""
        try:
            detail = self.state.close_detail.encode()[: limits.MAX_TEXT_LEN].decode(errors="ignore")
            return self.conn.send(Goodbye(reason, detail))
        except LocalProtocolError:
            return b""
