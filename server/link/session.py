"""One device connection after its handshake: READY, then what the device asks and what it is sent.

Life of a session (link/transport.py owns the socket, link/handshake.py the first step):
  1. handshake (`handshake.run_handshake`, under one deadline): HELLO authenticated, WELCOME, READY.
     The handshake's slot in the acceptor is freed when it ends.
  2. READY confirms the session (state.py's CONFIRMING): only now is anything written (online,
     counter, last heard) and does the session replace an older connection of the device. The
     confirming transaction's commit (CONFIRMED) lets firmware be offered (ota_delivery.py).
  3. serving: the transport's reader hands each event to `_dispatch`; a PING is answered, a PUBLISH
     stored under its rate limit and acked, SUBSCRIBE and UNSUBSCRIBE change this connection's feed,
     OTA answers go to the OTA delivery. Subscribed events arrive from the broker (delivery.py), at
     most DEVICE_EVENT_QUEUE queued at a time: beyond that they are skipped and counted, never
     waited for. The idle timeout is the deadline of the session's nursery.
  4. closing: the transport's last words (GOODBYE or the refusal), the stream closed, the session
     unregistered, and one structured log line.
"""

from __future__ import annotations

import contextlib
import logging
import math

import trio

from protocol.codes import AckResult, CloseReason, OtaAbortReason, Privilege
from protocol.connection import Connection, ConnectionClosed, Event, Role
from protocol.errors import RemoteProtocolError
from protocol.messages import (
    Goodbye,
    Hello,
    Message,
    OtaAccept,
    OtaComplete,
    OtaDefer,
    OtaRefuse,
    OtaWindowAck,
    Ping,
    Pong,
    Publish,
    PublishAck,
    StatusUpdate,
    Subscribe,
    Unsubscribe,
)

from ..context import ServerContext
from ..events.feeds import DeviceFeed
from ..logs import log_event, now
from ..rules.admission import Decision
from ..store import StoreClosed
from ..store.records import EventRecord
from .acceptor import HandshakeSlot
from .delivery import Subscriptions
from .handshake import run_handshake
from .ota_delivery import OtaDelivery
from .state import LinkState, Step
from .transport import GOODBYE_TIMEOUT, Transport, peer_name
from .writes import ConfirmSession, EarlierDecision, MarkDisconnected

log = logging.getLogger("fleetgate.session")

# What ends a session from inside it; each is turned into its close reason by the transport.
_ENDINGS = (RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, StoreClosed)


class DeviceSession(LinkState):
    """One device connection; it is its own LinkState (stage and close reason, link/state.py)."""

    # Slots: tens of thousands live at once, and a __dict__ each was ~0.8 KiB of an idle connection.
    __slots__ = (
        "_ota",
        "_slot",
        "_subs",
        "_taken_before",
        "admission_epoch",
        "cloud_product_id",
        "conn",
        "ctx",
        "decision",
        "device_id",
        "events_accepted",
        "events_slowed",
        "hello",
        "peer",
        "refusal",
        "transport",
        "unanswered",
    )  # fmt: skip

    def __init__(self, stream: trio.abc.Stream, ctx: ServerContext, slot: HandshakeSlot | None = None) -> None:
        cfg = ctx.config
        self._slot = slot  # the acceptor's handshake slot (server/link/acceptor.py), freed when the handshake ends
        self.ctx = ctx
        self.peer = peer_name(stream)
        self.conn = Connection(Role.SERVER, ctx.server_key, rx_max_frame=cfg.rx_max_frame)
        super().__init__()  # the stage and close reason (link/state.py)
        self.transport = Transport(stream, self.conn, self, cfg.send_queue, cfg.write_timeout)
        self.device_id = ""
        self.hello: Hello | None = None
        self.decision: Decision | None = None
        self.cloud_product_id: int | None = None  # the device's product when last decided
        self.refusal: str | None = None  # why the handshake was refused (log only)
        self.admission_epoch: int | None = None  # the admission epoch the HELLO's facts were read at
        self.unanswered = False  # no complete HELLO in time: closed without a word, counted not logged
        self.events_accepted = 0
        self.events_slowed = 0
        self._ota: OtaDelivery | None = None  # made when first needed: most connections never offer
        self._subs: Subscriptions | None = None  # made with the first SUBSCRIBE: most never send one
        self._taken_before = 0  # cluster mode: publish tokens spent here before this session began

    # What tests and the registry's holders read of the transport and the subscriptions.
    @property
    def confirmed_in_store(self) -> bool:
        """READY's transaction has committed: what the store says of the device (its running
        firmware, above all) is this connection's."""
        return self.confirmed

    @property
    def events_delivered(self) -> int:
        return self._subs.events_delivered if self._subs is not None else 0

    @property
    def events_skipped(self) -> int:
        return self._subs.events_skipped if self._subs is not None else 0

    @property
    def feed(self) -> DeviceFeed | None:
        """The device's event feed, once it has subscribed to something."""
        return self._subs.feed if self._subs is not None else None

    # ------------------------------------------------------------------ control

    def request_close(self, reason: CloseReason, detail: str = "") -> None:
        """Ask the session to end (replacement, shutdown, slow consumer). Safe from any task."""
        self.transport.request_close(reason, detail)

    def enqueue(self, message: Message) -> None:
        """Queue a message for the writer without waiting; a full queue means a slow consumer."""
        self.transport.enqueue(message)

    def products_involved(self) -> set[int]:
        """Products whose changes can alter this session's decision."""
        out = {self.cloud_product_id} if self.cloud_product_id is not None else set()
        if self.hello is not None and self.hello.product_id is not None:
            out.add(self.hello.product_id)
        return out

    def _confirmed(self, result: tuple[Decision, int | None] | Exception | None) -> None:
        """The confirming transaction decided again; if an operator acted since HELLO, say so."""
        if result is None:  # cluster mode: another connection confirmed this hello's counter first
            self.request_close(CloseReason.REPLACED, "another connection with this hello's counter was confirmed")
        elif not isinstance(result, Exception):
            # Offers are planned only from here on: the plan must see what confirming wrote
            # (e.g. an update that did not take), not the state before it.
            self.advance(Step.COMMITTED)
            decision, cloud = result
            old = self.decision
            if old is None or (decision.status, decision.privileges) != (old.status, old.privileges):
                self.update_decision(decision, cloud)
            else:
                self.decision, self.cloud_product_id = decision, cloud
            self._start_ota()

    def _handed_bucket(self, handed: tuple[float, float]) -> None:
        cfg = self.ctx.config
        registry = self.ctx.registry
        spent = registry.publish_bucket(self.device_id, cfg.publish_rate, cfg.publish_burst).taken - self._taken_before
        registry.limit_publish_bucket(
            self.device_id, cfg.publish_rate, cfg.publish_burst, handed, spent, trio.current_time(), now()
        )

    def update_decision(self, decision: Decision, cloud_product_id: int | None) -> None:
        """An operator action changed this connection's admission: tell the device at once."""
        self.decision = decision
        self.cloud_product_id = cloud_product_id
        if Privilege.OTA not in decision.privileges and self._ota is not None:
            self._ota.revoke()  # its OTA_ABORT goes before the STATUS that explains it
        self.transport.enqueue(StatusUpdate(decision.status, decision.privileges, decision.product_id))
        self._start_ota()

    def offer_firmware(self) -> None:
        """This device's target may have changed (a release, a lock, a rollout): look again.
        A transfer in flight finishes first; the target is planned again after it."""
        if self._ota is not None:
            self._ota.plan_again()
        self._start_ota()

    def abort_firmware(self, reason: OtaAbortReason, detail: str = "") -> None:
        """Stop the transfer in flight, if any, and tell the device why."""
        if self._ota is not None:
            self._ota.abort(reason, detail)

    def _start_ota(self) -> None:
        """Offer firmware if this connection may receive it and none is being sent."""
        nursery, decision = self.transport.nursery, self.decision
        if nursery is None or decision is None or Privilege.OTA not in decision.privileges:
            return
        self._ota_delivery().start(nursery)

    def _ota_delivery(self) -> OtaDelivery:
        if self._ota is None:
            self._ota = OtaDelivery(self)
        return self._ota

    def _subscriptions(self) -> Subscriptions:
        if self._subs is None:
            self._subs = Subscriptions(self, self.transport, self.ctx.events)
        return self._subs

    # ------------------------------------------------------------------ run

    async def run(self) -> None:
        started = trio.current_time()
        try:
            try:
                handshook = await run_handshake(self)
            finally:
                if self._slot is not None and not self.unanswered:
                    self._slot.release()
            if handshook:
                await self._serve()
        except _ENDINGS as exc:
            self.transport.failed(exc)
        except trio.Cancelled:
            # Only the server's shutdown cancels a session from outside.
            self.set_close_reason(CloseReason.SERVER_SHUTDOWN, "server is stopping")
            raise
        finally:
            with trio.CancelScope(shield=True):
                await self._finish(trio.current_time() - started)

    async def _serve(self) -> None:
        assert self.hello is not None and self.decision is not None
        hello = self.hello
        self.ctx.registry.register(self, hello.counter)
        if self.ctx.node_id is not None:  # what this session spends before its bucket is handed over
            cfg = self.ctx.config
            self._taken_before = self.ctx.registry.publish_bucket(
                self.device_id, cfg.publish_rate, cfg.publish_burst
            ).taken
        self.advance(Step.READY)
        await self.ctx.store.submit(
            ConfirmSession(
                self.device_id,
                hello.counter,
                hello.firmware_version,
                hello.platform_id,
                hello.product_id,
                now(),
                claim_code=hello.claim_code,
                node_id=self.ctx.node_id,
                bus=self.ctx.bus,
                handed_bucket=self._handed_bucket if self.ctx.node_id is not None else None,
                earlier=None
                if self.admission_epoch is None
                else EarlierDecision(self.admission_epoch, self.decision, self.cloud_product_id),
            ),
            self._confirmed,
        )
        log_event(
            log,
            "device_connected",
            device_id=self.device_id,
            peer=self.peer,
            status=self.decision.status.name.lower(),
            privileges=_privilege_names(self.decision.privileges),
            product_id=hello.product_id,
            firmware_version=hello.firmware_version,
            platform_id=hello.platform_id,
            decision=self.decision.reason,
        )
        cfg, transport = self.ctx.config, self.transport
        async with trio.open_nursery() as nursery:
            # The nursery's deadline is the idle timeout (the transport's reader moves it): one
            # cancel scope per connection fewer than a scope of its own.
            nursery.cancel_scope.deadline = trio.current_time() + cfg.idle_timeout
            transport.scope = nursery.cancel_scope
            transport.nursery = nursery
            if self.close_reason is not None:  # asked to close while we were registering
                nursery.cancel_scope.cancel()
            transport.start_writer()  # what was queued while registering (a STATUS from confirming)
            if self.confirmed:  # the confirmation committed before the nursery opened
                self._start_ota()
            await transport.read_loop(self._dispatch, cfg.receive_size, cfg.idle_timeout)
            transport.nursery = None  # closing: no more tasks (a late confirmation must not start one)
            if self._ota is not None:
                await self._ota.settle(GOODBYE_TIMEOUT)
            nursery.cancel_scope.cancel()
        if nursery.cancel_scope.cancelled_caught and self.close_reason is None:
            # Nothing asked the session to close (that sets close_reason first): the deadline did.
            self.set_close_reason(CloseReason.IDLE_TIMEOUT, f"nothing received for {cfg.idle_timeout} s")

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, Ping):
            self.transport.enqueue(Pong(event.seq))
        elif isinstance(event, Publish):
            await self._publish(event)
        elif isinstance(event, Subscribe):
            self._subscriptions().subscribe(event)
        elif isinstance(event, Unsubscribe):
            self._subscriptions().unsubscribe(event)
        elif isinstance(event, OtaAccept | OtaDefer | OtaRefuse | OtaWindowAck | OtaComplete):
            if not self._ota_delivery().answer(event):
                self.request_close(CloseReason.PROTOCOL_ERROR, "more OTA answers than any transfer allows")
        elif isinstance(event, Goodbye):
            self.set_close_reason(
                CloseReason.NORMAL, f"device said goodbye: {event.reason.name.lower()} {event.detail}".strip()
            )
        elif isinstance(event, ConnectionClosed):
            self.set_close_reason(CloseReason.CONNECTION_LOST, "stream ended without goodbye")
        # Pong: nothing to do; receiving it already reset the idle deadline.

    async def _publish(self, msg: Publish) -> None:
        assert self.decision is not None
        cfg = self.ctx.config
        bucket = self.ctx.registry.publish_bucket(self.device_id, cfg.publish_rate, cfg.publish_burst)
        if not bucket.take(trio.current_time()):
            self.events_slowed += 1  # not stored: the device publishes it again later
            self.transport.enqueue(PublishAck(msg.seq, AckResult.SLOW_DOWN))
            return
        # Privilege gate: only a device holding product_events reaches the product's stream.
        privileges = self.decision.privileges
        product_id = self.decision.product_id if Privilege.PRODUCT_EVENTS in privileges else None
        record = EventRecord(
            device_id=self.device_id,
            name=msg.name,
            data=msg.data,
            ttl=msg.ttl,
            private=msg.private,
            published_at=now(),
            product_id=product_id,
            webhooks=Privilege.WEBHOOKS in privileges and self.decision.product_id is not None,
        )
        seq = msg.seq

        def acked(result: int | Exception) -> None:
            if isinstance(result, Exception):
                return  # not stored: no ack, so the device publishes it again
            self.events_accepted += 1
            self.transport.enqueue(PublishAck(seq, AckResult.ACCEPTED))

        # Stored, then published. Queued without a scheduler round trip while the write queue has
        # room (a read's publishes go in one run); the reader yields at its next receive.
        event_log = self.ctx.event_log
        if not event_log.try_append(record, acked):
            await event_log.append(record, acked)

    async def _finish(self, duration: float) -> None:
        self.set_close_reason(CloseReason.NORMAL)  # unless one was given: and nothing more is queued
        reason = self.close_reason
        assert reason is not None
        if self.unanswered:
            # Junk, most likely, and in a flood thousands of it: a reset, a count, one line per burst
            # (link/shed.py); a line each only at debug.
            await self.transport.abort()
            if self._slot is not None:
                self._slot.shed_unanswered()
            log_event(log, "device_shed", logging.DEBUG, peer=self.peer, reason=reason.name.lower(),
                      detail=self.close_detail)  # fmt: skip
            return
        if self._subs is not None:
            self._subs.close()
        await self.transport.close(reason, decided=self.decision is not None)
        if self.registered and self.ctx.registry.unregister(self):
            # Shutting down (store closed) is fine: startup marks every device offline anyway.
            with trio.move_on_after(GOODBYE_TIMEOUT), contextlib.suppress(StoreClosed):
                at = now()
                bucket = None
                if self.ctx.node_id is not None:  # hand the publish bucket to the node it moves to
                    bucket = self.ctx.registry.publish_bucket_state(self.device_id, trio.current_time(), at)
                await self.ctx.store.submit(MarkDisconnected(self.device_id, at, self.ctx.node_id, bucket))
        fields = {
            "device_id": self.device_id or None,
            "peer": self.peer,
            "reason": reason.name.lower(),
            "detail": self.close_detail,
            "stage": "open" if self.registered else "handshake",
            "duration_s": round(duration, 3) if math.isfinite(duration) else None,
            "frames_in": self.transport.frames_in,
            "frames_out": self.transport.frames_out,
            "events": self.events_accepted,
            "events_slowed": self.events_slowed,
            "events_delivered": self.events_delivered,
            "events_skipped": self.events_skipped,
        }
        if self.refusal is not None:
            log_event(log, "device_refused", logging.WARNING, **fields)
        else:
            level = logging.INFO if reason in _ORDINARY_CLOSES else logging.WARNING
            log_event(log, "device_closed", level, **fields)


_ORDINARY_CLOSES = frozenset(
    {CloseReason.NORMAL, CloseReason.REPLACED, CloseReason.SERVER_SHUTDOWN, CloseReason.CONNECTION_LOST}
)


def _privilege_names(privileges: Privilege) -> list[str]:
    return [p.name.lower() for p in Privilege if p and p in privileges and p.name]


async def handle_device(stream: trio.abc.Stream, ctx: ServerContext, slot: HandshakeSlot | None = None) -> None:
    """`trio.serve_tcp` handler: one session per connection; the stream is always closed.

    A bug in one session is logged and ends that session only: it must not take the
    listener, and every other device, down with it. Cancellation is never caught here.
    """
    try:
        await DeviceSession(stream, ctx, slot).run()
    except Exception:
        log.exception("device session crashed")
        await trio.aclose_forcefully(stream)
    finally:
        if slot is not None:
            slot.release()  # idempotent: the session normally released it when its handshake ended
