"""The handshake: who is at the other end, and the steps from the first bytes to READY.

`authenticate` is the judgement, pure: one HELLO against what the store holds, facts in and a verdict
out. Noise has already proved that the peer holds the static key it sent. `authenticate` decides the rest:
  1. the device ID is known and has a public key registered;
  2. the key Noise proved is that registered key (compared in constant time);
  3. the HELLO's counter is above every counter confirmed before, in the store or in this process
     (a replayed HELLO is refused even while the genuine one's store write is in flight);
  4. admission (`rules.admission.decide`) on the facts read with the device.
The store read is the caller's (`run_handshake` hands its result in): it waits for nothing, touches
no socket and writes nothing.

`run_handshake` is the steps, under one deadline, the first of them under a shorter one (the whole
HELLO within `first_message_timeout`, else the connection is closed unanswered: junk holding a slot):
the preamble and Noise message 1 (not answered if
the device has already closed its end: it gave up waiting in the listen queue), the store read,
`authenticate`, WELCOME, then READY. Any failure before WELCOME is answered with the bare refusal
frame (the transport's last words); the reason goes only to the log.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

import trio

from protocol import limits
from protocol.codes import CloseReason
from protocol.connection import ConnectionClosed
from protocol.errors import RemoteProtocolError
from protocol.messages import Goodbye, Hello, Ready, Welcome

from ..context import ServerContext
from ..logs import now
from ..rules.admission import Decision, DeviceFacts, ProductFacts, decide
from ..store.records import DeviceRecord
from .late_hello import arrived_event
from .peer_closed import peer_has_closed
from .transport import Transport

HANDSHAKE_READ = len(b"FG\x00\x01") + 2 + limits.MAX_HELLO_FRAME  # never read ahead before auth


@dataclass(frozen=True, slots=True)
class Refused:
    """The HELLO is refused; `reason` is for the log only."""

    reason: str


def authenticate(
    hello: Hello,
    presented_key: bytes,
    record: DeviceRecord | None,
    facts: DeviceFacts,
    product: ProductFacts | None,
    confirmed_counter: int,
) -> Decision | Refused:
    """The admission decision for `hello`, or why it is refused. `presented_key` is the static key
    Noise proved; `confirmed_counter` the highest counter this process has confirmed for the device."""
    if record is None:
        return Refused("unknown device ID")
    if record.public_key is None:
        return Refused("no public key is registered for this device")
    if not hmac.compare_digest(record.public_key, presented_key):
        return Refused(f"public key {presented_key.hex()[:16]}... does not match the registered key")
    last = max(record.last_counter, confirmed_counter)
    if hello.counter <= last:
        return Refused(f"replayed hello: counter {hello.counter} <= last confirmed {last}")
    return decide(facts, hello.product_id, product)


class Handshaking(Protocol):
    """What the handshake reads and fills in on its session (link/session.py's DeviceSession)."""

    ctx: ServerContext
    transport: Transport
    hello: Hello | None
    device_id: str
    decision: Decision | None
    cloud_product_id: int | None
    refusal: str | None
    admission_epoch: int | None  # the admission epoch the decision's facts were read at
    unanswered: bool  # closed before its HELLO was complete: no answer, counted as shed


async def run_handshake(session: Handshaking) -> bool:
    """From the first bytes to READY; True when the session may serve. Every other outcome is
    recorded as the session's close reason (and `refusal`, for a refused HELLO)."""
    cfg, transport = session.ctx.config, session.transport
    state, conn = transport.state, transport.conn
    with trio.move_on_after(cfg.handshake_timeout) as scope:
        transport.scope = scope
        try:
            # The whole HELLO within first_message_timeout: a device sends it with the connect, and
            # a connection that does not is junk holding a handshake slot.
            with trio.move_on_after(cfg.first_message_timeout) as first_deadline:
                first = await transport.stream.receive_some(HANDSHAKE_READ)
                if first and peer_has_closed(transport.stream):
                    state.set_close_reason(
                        CloseReason.CONNECTION_LOST, "closed its end before the hello was read: not answered"
                    )
                    return False
                conn.receive_data(first)
                event = await transport.next_event(HANDSHAKE_READ)
            if first_deadline.cancelled_caught:
                # Maybe only we were late (late_hello.py): what had the device sent by now?
                late = arrived_event(conn, transport.stream, HANDSHAKE_READ)
                if late is None:
                    session.unanswered = True
                    state.set_close_reason(
                        CloseReason.HANDSHAKE_TIMEOUT, f"no complete hello within {cfg.first_message_timeout:g} s"
                    )
                    return False
                if peer_has_closed(transport.stream):
                    state.set_close_reason(
                        CloseReason.CONNECTION_LOST, "closed its end before the hello was read: not answered"
                    )
                    return False
                event = late
            if isinstance(event, ConnectionClosed):
                state.set_close_reason(CloseReason.CONNECTION_LOST, "closed before the hello")
                return False
            assert isinstance(event, Hello)
            session.hello = event
            session.device_id = device_id = event.device_id.hex()
            # Read with the HELLOs that arrived in the same wakeup (admission_reads.py); nothing is
            # written before READY.
            epoch, record, facts, product = await session.ctx.admission_reads.facts(device_id, event.product_id)
            verdict = authenticate(
                event,
                conn.remote_static_key or b"",
                record,
                facts,
                product,
                session.ctx.registry.last_counter(device_id),
            )
            if isinstance(verdict, Refused):
                session.refusal = verdict.reason
                state.set_close_reason(CloseReason.AUTH_FAILED, verdict.reason)
                return False
            session.cloud_product_id = facts.cloud_product_id
            session.decision = verdict
            session.admission_epoch = epoch
            await transport.send_now(
                conn.send(
                    Welcome(
                        status=verdict.status,
                        privileges=verdict.privileges,
                        product_id=verdict.product_id,
                        heartbeat_interval=cfg.heartbeat_interval,
                        idle_timeout=cfg.idle_timeout,
                        rx_max_frame=cfg.rx_max_frame,
                        server_time_ms=int(now() * 1000),
                    )
                )
            )
            event = await transport.next_event(cfg.receive_size)
            if isinstance(event, ConnectionClosed):
                state.set_close_reason(CloseReason.CONNECTION_LOST, "closed before READY")
                return False
            if isinstance(event, Goodbye):  # the device aborted before confirming
                state.set_close_reason(
                    CloseReason.NORMAL, f"device said goodbye before READY: {event.reason.name.lower()}"
                )
                return False
            assert isinstance(event, Ready)  # the Connection lets nothing else through here
            return state.close_reason is None
        except RemoteProtocolError as exc:
            if exc.reason is CloseReason.AUTH_FAILED:
                session.refusal = str(exc)
            transport.failed(exc)
            return False
    if scope.cancelled_caught:
        state.set_close_reason(CloseReason.HANDSHAKE_TIMEOUT, f"no READY within {cfg.handshake_timeout:g} s")
    return False
