"""The device port's accept loop: a bound on handshakes in progress, a share of it per address.

Every accepted connection starts its handshake clock (`handshake_timeout`). Accepting a whole
reconnecting fleet at once would start every clock while the CPU works through the handshakes
one by one, and those at the back would time out. So at most `max_handshakes` are in progress;
the rest wait in the kernel's listen queue (`backlog`), where they cost the server nothing.

That bound is also what a flood aims at: idle sockets holding every slot lock real devices out.
So a slot is held only as long as the connection earns it (link/handshake.py closes one without a
complete HELLO after `first_message_timeout`), and one source address holds at most
`max_handshakes_per_address` slots (shares.py): a connection over its address's share is closed at
once, with a reset and no answer, and its slot goes straight back to the loop. It does not wait:
waiting it would hold a descriptor for junk, and a real device that was turned away retries. Since
one address can never hold every slot, the loop keeps accepting (and shedding) one host's backlog
instead of stopping on it, and the devices queued behind the junk are reached.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio

from ..accept_failures import ACCEPT_RETRY_ERRNOS, ACCEPT_RETRY_SLEEP, AcceptFailures
from ..config import ServerConfig
from .shares import AddressShares, address_key
from .shed import ShedCounters, ShedReason
from .transport import abort_stream

log = logging.getLogger("fleetgate.acceptor")


@dataclass(slots=True)
class AdmissionGate:
    """The device port's admission state, shared by its accept loops and the sessions they start."""

    slots: trio.Semaphore
    shares: AddressShares
    shed: ShedCounters = field(default_factory=ShedCounters)
    accept_failures: AcceptFailures = field(default_factory=lambda: AcceptFailures(log, "devices"))

    @classmethod
    def for_config(cls, cfg: ServerConfig) -> AdmissionGate:
        return cls(trio.Semaphore(cfg.max_handshakes), AddressShares(cfg.max_handshakes_per_address))


class HandshakeSlot:
    """One handshake's place and its address's share; released once, by whichever comes first:
    the handshake ending or the session ending."""

    __slots__ = ("_gate", "address")

    def __init__(self, gate: AdmissionGate, address: str) -> None:
        self._gate: AdmissionGate | None = gate
        self.address = address

    def release(self) -> None:
        if self._gate is not None:
            self._gate.slots.release()
            self._gate.shares.give_back(self.address)
            self._gate = None

    def shed_unanswered(self) -> None:
        """The connection is closed without a complete HELLO: count it (the line is per burst)."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.slots.release()
            gate.shares.give_back(self.address)
            gate.shed.shed(ShedReason.FIRST_MESSAGE_TIMEOUT, self.address)


Handler = Callable[[trio.SocketStream, HandshakeSlot], Awaitable[None]]


async def serve_devices(
    listeners: Sequence[trio.SocketListener], handler: Handler, sessions: trio.Nursery, gate: AdmissionGate
) -> None:
    """Accept on every listener until cancelled (the listeners are closed then); each connection
    runs `handler(stream, slot)` in `sessions`."""
    async with trio.open_nursery() as loops:
        loops.start_soon(gate.shed.report)
        for listener in listeners:
            loops.start_soon(_accept_loop, listener, handler, sessions, gate)


async def _accept_loop(
    listener: trio.SocketListener, handler: Handler, sessions: trio.Nursery, gate: AdmissionGate
) -> None:
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
            if not gate.shares.take(address):
                gate.slots.release()
                gate.shed.shed(ShedReason.ADDRESS_SHARE, address)
                abort_stream(stream)
                continue
            sessions.start_soon(handler, stream, HandshakeSlot(gate, address))
