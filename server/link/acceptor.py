"""The device port's accept loop: a bound on handshakes in progress, a share of it per address.

Every accepted connection starts its handshake clock (`handshake_timeout`). Accepting a whole
reconnecting fleet at once would start every clock while the CPU works through the handshakes
one by one, and those at the back would time out. So at most `max_handshakes` are in progress;
the rest wait in the kernel's listen queue (`backlog`), where they cost the server nothing.

That bound is also what a flood aims at: idle sockets holding every slot lock real devices out.
So a slot is held only as long as the connection earns it (link/handshake.py closes one without a
complete HELLO after `first_message_timeout`), and one source address holds at most
`max_handshakes_per_address` slots (shares.py). Since one address never holds every slot, the loop
keeps accepting instead of stopping on one host's backlog, and what queued behind it is reached.

A connection over its address's share is accepted and waits, without a slot and without a clock,
for one of its own address's handshakes to end, which hands it that slot: many real devices behind
one carrier NAT address that reconnect at once are served in turn, not turned away. Waiting costs a
descriptor, so it is bounded: WAITING_PER_SLOT x max_handshakes connections in all, at most half of
them from one address. One address over its half is closed at once (a reset, no answer, counted);
when every place is taken the loop stops accepting until one frees, as before the listen queue.

A cluster node that cannot reach its database closes every new connection as it is accepted
(`AdmissionGate.refusing`, counted as shed `database_lost`): it could not confirm the session,
and the device's retry reaches another node through the load balancer.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable, Sequence

import trio

from ..accept_failures import ACCEPT_RETRY_ERRNOS, ACCEPT_RETRY_SLEEP, AcceptFailures
from ..config import ServerConfig
from .shares import AddressShares, address_key
from .shed import ShedCounters, ShedReason
from .transport import abort_stream

log = logging.getLogger("fleetgate.acceptor")


Handler = Callable[[trio.SocketStream, "HandshakeSlot"], Awaitable[None]]
WAITING_PER_SLOT = 4  # connections over their address's share that may wait, per handshake slot


class AdmissionGate:
    """The device port's admission state: slots, shares, the connections waiting for their address's
    turn, what was shed and accept failures. Shared by its accept loops and the sessions they start."""

    def __init__(self, max_handshakes: int, per_address: int) -> None:
        self.slots = trio.Semaphore(max_handshakes)
        self.shares = AddressShares(per_address)
        self.room = WAITING_PER_SLOT * max_handshakes  # waiting connections in all, at most
        self.room_per_address = max(1, self.room // 2)
        self.waiting = 0
        self._waiting: dict[str, collections.deque[trio.SocketStream]] = {}  # by address, in arrival order
        self._room_freed = trio.Event()
        self._start: Callable[[trio.SocketStream, HandshakeSlot], None] | None = None
        self.shed = ShedCounters()
        self.accept_failures = AcceptFailures(log, "devices")
        # True while this node cannot take devices (it cannot reach its database): every new
        # connection is closed at once, its HELLO unread, so the load balancer's retry finds
        # another node (app.py sets it from the cluster bus).
        self.refusing: Callable[[], bool] = lambda: False

    @classmethod
    def for_config(cls, cfg: ServerConfig) -> AdmissionGate:
        return cls(cfg.max_handshakes, cfg.max_handshakes_per_address)

    def waiting_from(self, address: str) -> int:
        queue = self._waiting.get(address)
        return len(queue) if queue is not None else 0

    def serve_with(self, handler: Handler, sessions: trio.Nursery) -> None:
        """Where admitted connections run: `handler(stream, slot)` in `sessions`."""

        def start(stream: trio.SocketStream, slot: HandshakeSlot) -> None:
            sessions.start_soon(handler, stream, slot)

        self._start = start

    def begin(self, stream: trio.SocketStream, address: str) -> None:
        """Start the handshake of a connection holding a slot and its address's share."""
        assert self._start is not None, "serve_with comes first"
        self._start(stream, HandshakeSlot(self, address))

    async def place(self, stream: trio.SocketStream, address: str) -> None:
        """A connection whose address holds its share (no slot held): wait in line, or be shed."""
        try:
            while True:
                if self.shares.held(address) < self.shares.per_address:
                    # Its address's handshakes ended while the loop waited for room: it needs a slot.
                    await self.slots.acquire()
                    if self.shares.take(address):
                        self.begin(stream, address)
                        return
                    self.slots.release()
                    continue
                if self.waiting_from(address) >= self.room_per_address:
                    self.shed.shed(ShedReason.ADDRESS_SHARE, address)
                    abort_stream(stream)
                    return
                if self.waiting < self.room:
                    self._waiting.setdefault(address, collections.deque()).append(stream)
                    self.waiting += 1
                    return
                await self._room_freed.wait()  # every place taken: stop accepting until one frees
        except BaseException:
            abort_stream(stream)
            raise

    def handshake_ended(self, address: str, shed: bool) -> None:
        """A handshake of `address` ended: its slot and share pass to the next connection waiting
        from that address, or go back."""
        if shed:
            self.shed.shed(ShedReason.FIRST_MESSAGE_TIMEOUT, address)
        queue = self._waiting.get(address)
        if not queue:
            self.slots.release()
            self.shares.give_back(address)
            return
        stream = queue.popleft()
        if not queue:
            del self._waiting[address]
        self.waiting -= 1
        self._room_freed.set()
        self._room_freed = trio.Event()
        self.begin(stream, address)

    def close_waiting(self) -> None:
        """The server stops accepting: the connections still waiting are closed unanswered."""
        for queue in self._waiting.values():
            for stream in queue:
                abort_stream(stream)
        self._waiting.clear()
        self.waiting = 0


class HandshakeSlot:
    """One handshake's place and its address's share; released once, by whichever comes first:
    the handshake ending or the session ending."""

    __slots__ = ("_gate", "address")

    def __init__(self, gate: AdmissionGate, address: str) -> None:
        self._gate: AdmissionGate | None = gate
        self.address = address

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.handshake_ended(self.address, shed=False)

    def shed_unanswered(self) -> None:
        """The connection is closed without a complete HELLO: count it (the line is per burst)."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.handshake_ended(self.address, shed=True)


async def serve_devices(
    listeners: Sequence[trio.SocketListener], handler: Handler, sessions: trio.Nursery, gate: AdmissionGate
) -> None:
    """Accept on every listener until cancelled (the listeners are closed then, and the connections
    still waiting for their turn); each connection runs `handler(stream, slot)` in `sessions`."""
    gate.serve_with(handler, sessions)
    try:
        async with trio.open_nursery() as loops:
            loops.start_soon(gate.shed.report)
            for listener in listeners:
                loops.start_soon(_accept_loop, listener, gate)
    finally:
        gate.close_waiting()


async def _accept_loop(listener: trio.SocketListener, gate: AdmissionGate) -> None:
    async with listener:
        while True:
            await gate.slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as exc:
                gate.slots.release()
                if exc.errno not in ACCEPT_RETRY_ERRNOS:
                    raise
                gate.accept_failures.failed(exc)
                await trio.sleep(ACCEPT_RETRY_SLEEP)
                continue
            except BaseException:
                gate.slots.release()
                raise
            try:
                address = address_key(stream.socket.getpeername())
            except OSError:  # reset while it waited in the queue: nobody to serve
                gate.slots.release()
                abort_stream(stream)
                continue
            if gate.refusing():
                gate.slots.release()
                gate.shed.shed(ShedReason.DATABASE_LOST, address)
                abort_stream(stream)
                continue
            if gate.shares.take(address):
                gate.begin(stream, address)
            else:
                gate.slots.release()
                await gate.place(stream, address)
