"""One device connection: the only place device bytes meet a socket.

Life of a session:
  1. handshake (under one deadline): preamble + message 1 (not answered if the device has
     already closed its end: it gave up waiting in the listen queue) -> look the device up,
     check its key and replay counter -> admission decision -> WELCOME -> wait for READY.
     Any failure before WELCOME is answered with the bare refusal frame; the reason goes only
     to the log.
  2. READY confirms the session: only now is anything written (online, counter, last heard)
     and does the session replace an older connection of the same device.
  3. serving: a reader (this task) and at most one writer task, which owns all socket writes and
     runs only while the bounded outbox holds something (an idle connection is one task). A
     device that does not read is closed, not buffered. The idle timeout is the deadline of the
     session's nursery. The handshake's slot in the acceptor is freed when the handshake ends.
     Subscribed events join that queue from the broker (`_deliver`), at most DEVICE_EVENT_QUEUE
     at a time: beyond that they are skipped and counted, never waited for.
  4. closing: a GOODBYE with the typed reason when the link still allows it, the stream closed,
     and one structured log line.

Over 400 lines, knowingly, for now: issue 13's phase A moved this file whole; phase B splits it into
transport (read loop, outbox, linger, one exception-to-close-reason mapping), handshake, session and ota.
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import logging
import math
from collections.abc import Callable

import trio

from protocol import limits
from protocol.codes import AckResult, CloseReason, OtaAbortReason, Privilege, SubscribeResult
from protocol.connection import Connection, ConnectionClosed, Event, NeedData, Role, State
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.messages import (
    EventMessage,
    Goodbye,
    Hello,
    Message,
    OtaAbort,
    OtaAccept,
    OtaComplete,
    OtaDefer,
    OtaRefuse,
    OtaWindowAck,
    Ping,
    Pong,
    Publish,
    PublishAck,
    Ready,
    StatusUpdate,
    Subscribe,
    SubscribeAck,
    Unsubscribe,
    Welcome,
    event_fits_frame,
    parse_device_id,
)

from ..context import ServerContext
from ..events.feeds import DEVICE_EVENT_QUEUE, DeviceFeed, device_may_receive
from ..logs import log_event, now
from ..rules.admission import Decision, decide
from ..store import EventRecord, StoreClosed
from ..store.ops import ConfirmSession, MarkDisconnected
from . import ota_delivery
from .peer_closed import peer_has_closed

log = logging.getLogger("fleetgate.session")

HANDSHAKE_READ = len(b"FG\x00\x01") + 2 + limits.MAX_HELLO_FRAME  # never read ahead before auth
GOODBYE_TIMEOUT = 1.0  # seconds a closing session spends delivering its GOODBYE or refusal
IDLE_SLACK = 1.0  # seconds the idle deadline may run past idle_timeout (see _read_loop)
LINGER_MAX_BYTES = 256 * 1024  # input discarded after our last words before we just close


class _Refuse(Exception):
    """Internal: refuse the device; the message is the log-only reason."""


def _peer_name(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    if sock is None:
        return "memory"
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "unknown"
    return f"{host}:{port}"


class DeviceSession:
    # Slots: tens of thousands live at once, and a __dict__ each was ~0.8 KiB of an idle connection.
    __slots__ = (
        "_confirmed_in_store",
        "_event_queue_cap",
        "_events_queued",
        "_feed",
        "_handshake_done",
        "_nursery",
        "_ota_complete_queued",
        "_ota_finished",
        "_ota_inbox",
        "_ota_replan",
        "_ota_scope",
        "_ota_transfer_id",
        "_outbox",
        "_scope",
        "_skipped_unreported",
        "_stream_broken",
        "_writing",
        "close_detail",
        "close_reason",
        "cloud_product_id",
        "conn",
        "ctx",
        "decision",
        "device_id",
        "events_accepted",
        "events_delivered",
        "events_skipped",
        "events_slowed",
        "frames_in",
        "frames_out",
        "hello",
        "peer",
        "refusal",
        "registered",
        "stream",
    )  # fmt: skip

    def __init__(
        self, stream: trio.abc.Stream, ctx: ServerContext, handshake_done: Callable[[], None] | None = None
    ) -> None:
        self.stream = stream
        self._handshake_done = handshake_done  # frees the acceptor's slot (server/link/acceptor.py)
        self.ctx = ctx
        self.peer = _peer_name(stream)
        self.conn = Connection(Role.SERVER, ctx.server_key, rx_max_frame=ctx.config.rx_max_frame)
        self.device_id = ""
        self.hello: Hello | None = None
        self.decision: Decision | None = None
        self.cloud_product_id: int | None = None  # the device's product when last decided
        self.close_reason: CloseReason | None = None
        self.close_detail = ""
        self.refusal: str | None = None
        self.registered = False
        self.events_accepted = 0
        self.events_slowed = 0
        self.frames_in = 0
        self.frames_out = 0
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._ota_scope: trio.CancelScope | None = None  # the running transfer, if any
        self._ota_transfer_id = 0
        self._ota_replan = False  # the target may have changed while a transfer was in flight
        self._ota_complete_queued = False  # the device's OTA_COMPLETE waits in the OTA inbox
        self._ota_finished: trio.Event | None = None  # set when the transfer task in flight ends
        self._confirmed_in_store = False
        # The device's OTA answers, made with the first transfer or answer: most connections never
        # have one, and a channel pair is ~1 KiB.
        self._ota_inbox: tuple[trio.MemorySendChannel[Message], trio.MemoryReceiveChannel[Message]] | None = None
        self._stream_broken = False
        # Outgoing messages, at most config.send_queue. A writer task runs only while there is
        # something to write (`enqueue` starts it, it ends when the outbox is empty): an idle
        # connection is one task, and never two writers (docs/BENCHMARKS.md, "hold").
        self._outbox: collections.deque[Message] = collections.deque()
        self._writing = False
        self._feed: DeviceFeed | None = None  # this connection's subscriptions, once it has one
        self._events_queued = 0  # EVENTs in the outgoing queue or being written
        # Room for other traffic (OTA windows, acks) stays in the outgoing queue whatever its size.
        self._event_queue_cap = max(1, min(DEVICE_EVENT_QUEUE, ctx.config.send_queue // 4))
        self._skipped_unreported = 0  # skipped since the last EVENT sent: the next one says so
        self.events_delivered = 0
        self.events_skipped = 0

    # ------------------------------------------------------------------ control

    def request_close(self, reason: CloseReason, detail: str = "") -> None:
        """Ask the session to end (replacement, shutdown, slow consumer). Safe from any task."""
        if self.close_reason is None:
            self.close_reason = reason
            self.close_detail = detail
        if self._scope is not None:
            self._scope.cancel()

    def _set_close(self, reason: CloseReason, detail: str = "") -> None:
        if self.close_reason is None:
            self.close_reason = reason
            self.close_detail = detail

    def products_involved(self) -> set[int]:
        """Products whose changes can alter this session's decision."""
        out = {self.cloud_product_id} if self.cloud_product_id is not None else set()
        if self.hello is not None and self.hello.product_id is not None:
            out.add(self.hello.product_id)
        return out

    @property
    def confirmed_in_store(self) -> bool:
        """READY's transaction has committed: what the store says of the device (its running
        firmware, above all) is this connection's."""
        return self._confirmed_in_store

    def _confirmed(self, result: object) -> None:
        """The confirming transaction decided again; if an operator acted since HELLO, say so."""
        if isinstance(result, tuple):
            # Offers are planned only from here on: the plan must see what confirming wrote
            # (e.g. an update that did not take), not the state before it.
            self._confirmed_in_store = True
            decision, cloud = result
            old = self.decision
            if old is None or (decision.status, decision.privileges) != (old.status, old.privileges):
                self.update_decision(decision, cloud)
            else:
                self.decision, self.cloud_product_id = decision, cloud
            self._start_ota()

    def update_decision(self, decision: Decision, cloud_product_id: int | None) -> None:
        """An operator action changed this connection's admission: tell the device at once."""
        self.decision = decision
        self.cloud_product_id = cloud_product_id
        if Privilege.OTA not in decision.privileges and self._ota_scope is not None:
            # Revoked mid-transfer: stop sending, and say so before the STATUS that explains why.
            self._ota_scope.cancel()
            self.enqueue(OtaAbort(self._ota_transfer_id, OtaAbortReason.PRIVILEGE_REVOKED))
        self.enqueue(StatusUpdate(decision.status, decision.privileges, decision.product_id))
        self._start_ota()

    def offer_firmware(self) -> None:
        """This device's target may have changed (a release, a lock, a rollout): look again.
        A transfer in flight finishes first; the target is planned again after it."""
        self._ota_replan = True
        self._start_ota()

    def abort_firmware(self, reason: OtaAbortReason, detail: str = "") -> None:
        """Stop the transfer in flight, if any, and tell the device why."""
        if self._ota_scope is not None:
            self._ota_scope.cancel()
            self._ota_scope = None  # a new offer may start at once; the old task is already cancelled
            self._ota_replan = False
            self.enqueue(OtaAbort(self._ota_transfer_id, reason, detail))

    def _start_ota(self) -> None:
        """Offer firmware if this connection may receive it and none is being sent."""
        decision = self.decision
        if self._nursery is None or self._ota_scope is not None or decision is None:
            return
        if Privilege.OTA in decision.privileges:
            self._ota_scope = trio.CancelScope()
            self._ota_finished = trio.Event()
            self._nursery.start_soon(self._run_ota, self._ota_scope, self._ota_finished)

    def _ota_channel(self) -> tuple[trio.MemorySendChannel[Message], trio.MemoryReceiveChannel[Message]]:
        if self._ota_inbox is None:
            self._ota_inbox = trio.open_memory_channel[Message](2 * ota_delivery.WINDOW + 8)
        return self._ota_inbox

    async def _run_ota(self, scope: trio.CancelScope, finished: trio.Event) -> None:
        try:
            with scope:
                self._ota_replan = True
                while self._ota_replan:
                    self._ota_replan = False
                    plan = await ota_delivery.plan_offer(self)
                    if plan is None:
                        break
                    self._ota_transfer_id += 1
                    inbox = self._ota_channel()[1]
                    if not await ota_delivery.transfer(self, plan, inbox, self._ota_transfer_id):
                        break  # declined, refused or stalled: not offered again on this connection unasked
        except RemoteProtocolError as exc:
            # The device broke the transfer rules: that ends its connection, and only its connection.
            self.request_close(exc.reason, f"OTA: {exc}")
        finally:
            if self._ota_scope is scope:
                self._ota_scope = None
            finished.set()

    def enqueue(self, message: Message) -> None:
        """Queue a message for the writer without waiting; a full queue means a slow consumer."""
        if self.close_reason is not None:
            return  # the session is ending; nothing more goes out
        if len(self._outbox) >= self.ctx.config.send_queue:
            self.request_close(CloseReason.SLOW_CONSUMER, f"outgoing queue of {self.ctx.config.send_queue} is full")
            return
        self._outbox.append(message)
        self._start_writer()

    def _start_writer(self) -> None:
        """Run the writer if there is work and none runs (before the nursery opens, messages wait).
        Once the session is closing none starts: its last words are `_finish`'s GOODBYE."""
        if self._outbox and not self._writing and self._nursery is not None and self.close_reason is None:
            self._writing = True
            self._nursery.start_soon(self._writer)

    # ------------------------------------------------------------------ run

    async def run(self) -> None:
        started = trio.current_time()
        try:
            try:
                try:
                    handshook = await self._handshake()
                finally:
                    if self._handshake_done is not None:
                        self._handshake_done()
                if handshook:
                    await self._serve()
            except RemoteProtocolError as exc:
                self._set_close(exc.reason, str(exc))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._stream_broken = True
                self._set_close(CloseReason.CONNECTION_LOST, str(exc) or type(exc).__name__)
            except StoreClosed:
                self._set_close(CloseReason.SERVER_SHUTDOWN, "the store is closing")
            except trio.Cancelled:
                # Only the server's shutdown cancels a session from outside.
                self._set_close(CloseReason.SERVER_SHUTDOWN, "server is stopping")
                raise
        finally:
            with trio.CancelScope(shield=True):
                await self._finish(trio.current_time() - started)

    async def _next_event(self, max_bytes: int) -> Event:
        while True:
            event = self.conn.next_event()
            if not isinstance(event, NeedData):
                if isinstance(event, Message):
                    self.frames_in += 1
                return event
            data = await self.stream.receive_some(max_bytes)
            self.conn.receive_data(data)

    async def _handshake(self) -> bool:
        cfg = self.ctx.config
        with trio.move_on_after(cfg.handshake_timeout) as scope:
            self._scope = scope
            try:
                first = await self.stream.receive_some(HANDSHAKE_READ)
                if first and peer_has_closed(self.stream):
                    self._set_close(
                        CloseReason.CONNECTION_LOST, "closed its end before the hello was read: not answered"
                    )
                    return False
                self.conn.receive_data(first)
                event = await self._next_event(HANDSHAKE_READ)
                if isinstance(event, ConnectionClosed):
                    self._set_close(CloseReason.CONNECTION_LOST, "closed before the hello")
                    return False
                assert isinstance(event, Hello)
                self.hello = event
                self.device_id = event.device_id.hex()
                self.decision = await self._authenticate(event)
                await self._send_now(
                    self.conn.send(
                        Welcome(
                            status=self.decision.status,
                            privileges=self.decision.privileges,
                            product_id=self.decision.product_id,
                            heartbeat_interval=cfg.heartbeat_interval,
                            idle_timeout=cfg.idle_timeout,
                            rx_max_frame=cfg.rx_max_frame,
                            server_time_ms=int(now() * 1000),
                        )
                    )
                )
                event = await self._next_event(cfg.receive_size)
                if isinstance(event, ConnectionClosed):
                    self._set_close(CloseReason.CONNECTION_LOST, "closed before READY")
                    return False
                if isinstance(event, Goodbye):  # the device aborted before confirming
                    self._set_close(
                        CloseReason.NORMAL, f"device said goodbye before READY: {event.reason.name.lower()}"
                    )
                    return False
                assert isinstance(event, Ready)  # the Connection lets nothing else through here
                return self.close_reason is None
            except _Refuse as refusal:
                self.refusal = str(refusal)
                self._set_close(CloseReason.AUTH_FAILED, str(refusal))
                return False
            except RemoteProtocolError as exc:
                if exc.reason is CloseReason.AUTH_FAILED:
                    self.refusal = str(exc)
                self._set_close(exc.reason, str(exc))
                return False
        if scope.cancelled_caught:
            self._set_close(CloseReason.HANDSHAKE_TIMEOUT, f"no READY within {cfg.handshake_timeout:g} s")
        return False

    async def _authenticate(self, hello: Hello) -> Decision:
        """Proof of possession, then admission. Noise proved the peer holds the key it sent;
        that key must be this device's registered key. Nothing is written here."""
        store = self.ctx.store
        record, facts, product = await store.read_now(store.sync.admission_facts, self.device_id, hello.product_id)
        presented = self.conn.remote_static_key or b""
        if record is None:
            raise _Refuse("unknown device ID")
        if record.public_key is None:
            raise _Refuse("no public key is registered for this device")
        if not hmac.compare_digest(record.public_key, presented):
            raise _Refuse(f"public key {presented.hex()[:16]}... does not match the registered key")
        last = max(record.last_counter, self.ctx.registry.last_counter(self.device_id))
        if hello.counter <= last:
            raise _Refuse(f"replayed hello: counter {hello.counter} <= last confirmed {last}")
        self.cloud_product_id = facts.cloud_product_id
        return decide(facts, hello.product_id, product)

    async def _send_now(self, data: bytes) -> None:
        """Write during the handshake, before the writer task exists (still one writer)."""
        self.frames_out += 1
        await self.stream.send_all(data)

    async def _serve(self) -> None:
        assert self.hello is not None and self.decision is not None
        hello = self.hello
        self.ctx.registry.register(self, hello.counter)
        self.registered = True
        await self.ctx.store.submit(
            ConfirmSession(
                self.device_id,
                hello.counter,
                hello.firmware_version,
                hello.platform_id,
                hello.product_id,
                now(),
                claim_code=hello.claim_code,
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
        cfg = self.ctx.config
        async with trio.open_nursery() as nursery:
            # The nursery's deadline is the idle timeout (`_read_loop` moves it): one cancel scope
            # per connection fewer than a scope of its own.
            nursery.cancel_scope.deadline = trio.current_time() + cfg.idle_timeout
            self._scope = nursery.cancel_scope
            self._nursery = nursery
            if self.close_reason is not None:  # asked to close while we were registering
                nursery.cancel_scope.cancel()
            self._start_writer()  # what was queued while registering (a STATUS from confirming)
            if self._confirmed_in_store:  # the confirmation committed before the nursery opened
                self._start_ota()
            await self._read_loop()
            self._nursery = None  # closing: no more tasks (a late confirmation must not start one)
            if self._ota_complete_queued and self._ota_scope is not None and self._ota_finished is not None:
                # A device verifies, sends OTA_COMPLETE and says goodbye at once (it reboots): the
                # transfer task must record the outcome before the session cancels it.
                with trio.move_on_after(GOODBYE_TIMEOUT):
                    await self._ota_finished.wait()
            nursery.cancel_scope.cancel()
        if nursery.cancel_scope.cancelled_caught and self.close_reason is None:
            # Nothing asked the session to close (that sets close_reason first): the deadline did.
            self._set_close(CloseReason.IDLE_TIMEOUT, f"nothing received for {cfg.idle_timeout} s")

    async def _read_loop(self) -> None:
        """Reader: errors end the session here (a nursery would wrap them in a group)."""
        cfg = self.ctx.config
        idle = self._scope  # the session nursery's scope: its deadline is the idle timeout
        assert idle is not None
        try:
            while self.close_reason is None:
                event = await self._next_event(cfg.receive_size)
                # Moved at most once per IDLE_SLACK: each move re-sorts trio's deadline heap, and
                # a busy device sends thousands of frames a second. The timeout is T to T + slack.
                heard = trio.current_time() + cfg.idle_timeout
                if heard >= idle.deadline:
                    idle.deadline = heard + IDLE_SLACK
                await self._dispatch(event)
        except RemoteProtocolError as exc:
            self._set_close(exc.reason, str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._stream_broken = True
            self._set_close(CloseReason.CONNECTION_LOST, str(exc) or type(exc).__name__)

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, Ping):
            self.enqueue(Pong(event.seq))
        elif isinstance(event, Publish):
            await self._publish(event)
        elif isinstance(event, Subscribe):
            self._subscribe(event)
        elif isinstance(event, Unsubscribe):
            self._unsubscribe(event)
        elif isinstance(event, OtaAccept | OtaDefer | OtaRefuse | OtaWindowAck | OtaComplete):
            if isinstance(event, OtaComplete):
                self._ota_complete_queued = True
            try:
                self._ota_channel()[0].send_nowait(event)
            except trio.WouldBlock:
                self.request_close(CloseReason.PROTOCOL_ERROR, "more OTA answers than any transfer allows")
        elif isinstance(event, Goodbye):
            self._set_close(
                CloseReason.NORMAL, f"device said goodbye: {event.reason.name.lower()} {event.detail}".strip()
            )
        elif isinstance(event, ConnectionClosed):
            self._set_close(CloseReason.CONNECTION_LOST, "stream ended without goodbye")
        # Pong: nothing to do; receiving it already reset the idle deadline.

    async def _publish(self, msg: Publish) -> None:
        assert self.decision is not None
        cfg = self.ctx.config
        bucket = self.ctx.registry.publish_bucket(self.device_id, cfg.publish_rate, cfg.publish_burst)
        if not bucket.take(trio.current_time()):
            self.events_slowed += 1  # not stored: the device publishes it again later
            self.enqueue(PublishAck(msg.seq, AckResult.SLOW_DOWN))
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

        def acked(result: object) -> None:
            if isinstance(result, BaseException):
                return  # not stored: no ack, so the device publishes it again
            self.events_accepted += 1
            self.enqueue(PublishAck(seq, AckResult.ACCEPTED))

        await self.ctx.event_log.append(record, acked)  # stored, then published

    # ------------------------------------------------------------------ subscriptions

    def _subscribe(self, msg: Subscribe) -> None:
        """Accepted whatever the privileges held now: they may change while connected, and each
        event is checked against the ones held when it is published (`_deliver`)."""
        assert self.hello is not None
        product_id = self.hello.product_id
        held = self._feed.prefixes if self._feed is not None else set()
        if product_id is None:
            result = SubscribeResult.NOT_PERMITTED  # development firmware: never any product privilege
        elif msg.prefix in held:
            result = SubscribeResult.ACCEPTED  # already held: not counted twice
        elif len(held) >= limits.MAX_SUBSCRIPTIONS:
            result = SubscribeResult.TOO_MANY
        else:
            if self._feed is None:
                self._feed = DeviceFeed(self.device_id, product_id, self._deliver)
            self.ctx.events.add_prefix(self._feed, msg.prefix)
            result = SubscribeResult.ACCEPTED
        self.enqueue(SubscribeAck(msg.seq, result))
        accepted = result is SubscribeResult.ACCEPTED
        log_event(
            log,
            "device_subscribed" if accepted else "subscription_refused",
            logging.INFO if accepted else logging.WARNING,
            device_id=self.device_id,
            prefix=msg.prefix,
            result=result.name.lower(),
            subscriptions=len(self._feed.prefixes) if self._feed is not None else 0,
        )

    def _unsubscribe(self, msg: Unsubscribe) -> None:
        """Always ACCEPTED: afterwards the prefix (or, for None, every prefix) is not held."""
        feed = self._feed
        if feed is not None:
            if msg.prefix is None:
                self.ctx.events.close_feed(feed)
            else:
                self.ctx.events.remove_prefix(feed, msg.prefix)
        self.enqueue(SubscribeAck(msg.seq, SubscribeResult.ACCEPTED))
        log_event(
            log,
            "device_unsubscribed",
            device_id=self.device_id,
            prefix=msg.prefix,
            subscriptions=len(feed.prefixes) if feed is not None else 0,
        )

    def _deliver(self, event: EventRecord) -> None:
        """Called by the broker, on the publisher's path, for an event matching a prefix: decide
        with the privileges held right now, then queue it or skip it. Never waits."""
        decision = self.decision
        if decision is None or self.close_reason is not None or self.conn.state is not State.OPEN:
            return
        if not device_may_receive(event, self.device_id, decision.product_id, decision.privileges):
            return
        if (
            self._events_queued >= self._event_queue_cap
            or len(self._outbox) >= self.ctx.config.send_queue
            or not _sendable(event)
            or not event_fits_frame(self.conn.peer_rx_max_frame, event.name, event.data)
        ):
            # Behind (or the event cannot travel to this device): the device learns how many it
            # missed from the next EVENT's `skipped`; it cannot fetch them again.
            self.events_skipped += 1
            self._skipped_unreported += 1
            return
        self._events_queued += 1
        self.events_delivered += 1
        self.enqueue(
            EventMessage(
                event_id=event.id or 0,
                name=event.name,
                data=event.data,
                published_at_ms=max(0, int(event.published_at * 1000)),
                ttl=event.ttl,
                source=_source(event),
                to_device=event.to_device is not None,
                skipped=min(self._skipped_unreported, limits.MAX_SKIPPED),
            )
        )
        self._skipped_unreported = 0

    async def _writer(self) -> None:
        """The only task that writes after the handshake: drains the outbox, then ends."""
        cfg = self.ctx.config
        outbox = self._outbox
        try:
            while outbox:
                batch = list(outbox)
                outbox.clear()
                if self.conn.state is not State.OPEN:
                    return  # the device said goodbye (and the reader has set close_reason)
                # One buffer, frames sealed in place: an OTA window (~1 MiB) costs no join or per-frame copy.
                data = self.conn.send_batch(batch)
                with trio.move_on_after(cfg.write_timeout) as scope:
                    try:
                        # Until send_all returns, a cancel (timeout or close) may leave a
                        # partial frame on the wire: the stream then takes no more writes.
                        self._stream_broken = True
                        await self.stream.send_all(data)
                        self._stream_broken = False
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        self._stream_broken = True
                        self.request_close(CloseReason.CONNECTION_LOST, f"write failed: {exc}")
                        return
                self.frames_out += len(batch)
                self._events_queued -= sum(isinstance(m, EventMessage) for m in batch)
                if scope.cancelled_caught:
                    self.request_close(CloseReason.SLOW_CONSUMER, f"a write took over {cfg.write_timeout:g} s")
                    return
        finally:
            # No await between the empty check and here: a message queued later starts a new writer.
            self._writing = False

    async def _finish(self, duration: float) -> None:
        reason = self.close_reason = self.close_reason or CloseReason.NORMAL  # and nothing more is queued
        if self._feed is not None:
            self.ctx.events.close_feed(self._feed)  # subscriptions end with the connection
        self._outbox.clear()
        if not self._stream_broken:
            final = self._final_bytes(reason)
            if final:
                with (
                    trio.move_on_after(GOODBYE_TIMEOUT),
                    contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
                ):
                    await self.stream.send_all(final)
                    await self._linger()
        await trio.aclose_forcefully(self.stream)
        if self.registered and self.ctx.registry.unregister(self):
            # Shutting down (store closed) is fine: startup marks every device offline anyway.
            with trio.move_on_after(GOODBYE_TIMEOUT), contextlib.suppress(StoreClosed):
                await self.ctx.store.submit(MarkDisconnected(self.device_id, now()))
        fields = {
            "device_id": self.device_id or None,
            "peer": self.peer,
            "reason": reason.name.lower(),
            "detail": self.close_detail,
            "stage": "open" if self.registered else "handshake",
            "duration_s": round(duration, 3) if math.isfinite(duration) else None,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
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

    def _final_bytes(self, reason: CloseReason) -> bytes:
        """The refusal frame before WELCOME, a GOODBYE after it, or nothing."""
        state = self.conn.state
        if state in (State.AWAIT_HELLO, State.DECIDING) or (state is State.ERROR and self.decision is None):
            if reason in (CloseReason.SERVER_SHUTDOWN, CloseReason.CONNECTION_LOST):
                return b""
            try:
                return self.conn.refuse()
            except LocalProtocolError:
                return b""
        if reason is CloseReason.CONNECTION_LOST or state is State.CLOSED:
            return b""
        try:
            detail = self.close_detail.encode()[: limits.MAX_TEXT_LEN].decode(errors="ignore")
            return self.conn.send(Goodbye(reason, detail))
        except LocalProtocolError:
            return b""


_ORDINARY_CLOSES = frozenset(
    {CloseReason.NORMAL, CloseReason.REPLACED, CloseReason.SERVER_SHUTDOWN, CloseReason.CONNECTION_LOST}
)


def _sendable(event: EventRecord) -> bool:
    """Whether the event's fields fit EVENT's limits. Device and API events always do; a cloud
    event built elsewhere (a hook response's long name) might not, and must not reach the writer,
    where the encoder would refuse it."""
    try:
        name_bytes = len(event.name.encode())
    except UnicodeEncodeError:
        return False
    return (
        1 <= name_bytes <= limits.MAX_EVENT_NAME
        and len(event.data) <= limits.MAX_EVENT_DATA
        and 0 <= event.ttl <= limits.MAX_EVENT_TTL
        and (event.id or 0) <= limits.MAX_EVENT_ID
    )


def _source(event: EventRecord) -> bytes | None:
    """EVENT.source: the publishing device's ID, or None for the cloud's own events (the API's,
    and anything addressed to one device, whose device_id names the recipient)."""
    if event.to_device is not None:
        return None
    try:
        return parse_device_id(event.device_id)
    except ValueError:
        return None


def _privilege_names(privileges: Privilege) -> list[str]:
    return [p.name.lower() for p in Privilege if p and p in privileges and p.name]


async def handle_device(
    stream: trio.abc.Stream, ctx: ServerContext, handshake_done: Callable[[], None] | None = None
) -> None:
    """`trio.serve_tcp` handler: one session per connection; the stream is always closed.

    A bug in one session is logged and ends that session only: it must not take the
    listener, and every other device, down with it. Cancellation is never caught here.
    """
    try:
        await DeviceSession(stream, ctx, handshake_done).run()
    except Exception:
        log.exception("device session crashed")
        await trio.aclose_forcefully(stream)
    finally:
        if handshake_done is not None:
            handshake_done()  # idempotent: the session normally called it when its handshake ended
