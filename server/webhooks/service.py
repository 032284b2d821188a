"""Webhook delivery, driven from the store: at-least-once across restarts and `kill -9`.

Three kinds of task, run by the cluster's leader only (app.py starts `run` under the bus's
leadership), all reading and writing through the store:
- the dispatcher turns the stored events after its cursor into pending deliveries (dispatch.py,
  one transaction each); the broker's tap wakes it as events commit, nothing polls;
- one lane per target host sends that host's due deliveries, a few at a time (its throttle says
  how many: throttle.py), and records each outcome (outcome.py) once the answer is in: a delivery
  is marked succeeded only after a 2xx, so a crash in between sends it again, with the same
  `Idempotency-Key` (the event ID). A lane sleeps until its next retry is due or it is rung;
- the pruner deletes finished deliveries after their retention.
Memory stays bounded: a lane holds only the deliveries it is sending, whatever is pending.
Counters and the latest attempts are stored with each outcome (store/sqlite/webhook_deliveries.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar, NoReturn, Protocol

import trio

from ..cluster.bus import ClusterBus, NotLeader
from ..cluster.messages import ControlMessage, WebhooksChanged
from ..config import ServerConfig
from ..events.broker import EventBroker
from ..events.log import EventLog
from ..logs import log_event
from ..rules.webhook_model import Webhook
from ..store import AsyncStore, StoreClosed, Transaction, WriteOp
from ..store.records import EventRecord
from ..store.tx import StoreTx
from ..store.webhook_records import DeliveryUpdate, Dispatched, DueDelivery
from . import answers, guard, templates
from .dispatch import dispatch
from .outcome import answered, not_sent
from .request import RenderError, build, host_key
from .retry import RetryPolicy
from .sending import Sender, open_sender
from .throttle import HostThrottle


class WebhookContext(Protocol):
    """The parts of the server the delivery uses (ServerContext has them; it holds this service, so
    this module must not import it)."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def store(self) -> AsyncStore: ...

    @property
    def events(self) -> EventBroker: ...

    @property
    def event_log(self) -> EventLog: ...

    @property
    def bus(self) -> ClusterBus: ...


log = logging.getLogger("fleetgate.webhooks")

Tell = Callable[[], Awaitable[None]]  # what to tell the device, once the outcome is stored
DISPATCH_INTERVAL = 0.05  # seconds: the most a triggering event waits for its delivery row to be made
PRUNE_EVERY = 600.0  # seconds between sweeps for finished deliveries past their retention
PRUNE_BATCH = 1000  # rows deleted per transaction


@dataclass(slots=True, eq=False)
class Lane:
    """One target host: its webhooks, its throttle, the deliveries it is sending now."""

    host: str
    hook_ids: set[int] = field(default_factory=set)
    throttle: HostThrottle = field(default_factory=HostThrottle)
    sending: set[int] = field(default_factory=set)  # delivery IDs taken, until their outcome is stored
    requests: int = 0  # of which requests in flight (the throttle's limit); the rest await their write
    bell: trio.Event = field(default_factory=trio.Event)

    def ring(self) -> None:
        self.bell.set()


class WebhookService:
    """`run` lives in the leader's singletons nursery; `handle` gets every cluster message;
    `tap` is the broker's. `clock` is wall time (stored next-attempt times must survive restarts)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_id: dict[int, Webhook] = {}
        self._lanes: dict[str, Lane] = {}
        self._ctx: WebhookContext | None = None
        self._nursery: trio.Nursery | None = None
        self._sender: Sender | None = None
        self._wake_dispatch = trio.Event()
        self._fenced = False  # a write was refused: another node leads (set until the next run)

    # -- the webhooks in force (a copy of the store's, read again when the bus says they changed)
    async def handle(self, message: ControlMessage) -> None:
        if isinstance(message, WebhooksChanged) and self._ctx is not None:
            store = self._ctx.store
            hooks = await store.read(store.sync.list_webhooks, message.product_id)
            for old in [h for h in self._by_id.values() if h.product_id == message.product_id]:
                self._remove(old.id)
            for hook in hooks:
                self._put(hook)

    def _put(self, hook: Webhook) -> None:
        self._remove(hook.id)
        self._by_id[hook.id] = hook
        lane = self._lane(host_key(hook.spec.url))
        lane.hook_ids.add(hook.id)
        lane.ring()  # an enabled webhook may have deliveries due

    def _remove(self, webhook_id: int) -> None:
        old = self._by_id.pop(webhook_id, None)
        if old is not None:
            self._lane(host_key(old.spec.url)).hook_ids.discard(webhook_id)

    def _lane(self, host: str) -> Lane:
        lane = self._lanes.get(host)
        if lane is None:
            lane = self._lanes[host] = Lane(host)
            assert self._nursery is not None
            self._nursery.start_soon(self._run_lane, lane)
        return lane

    # -- triggering
    def tap(self, event: EventRecord) -> None:
        """Called by the broker for every event as it is published (after commit); never waits."""
        if event.webhooks and not self._wake_dispatch.is_set():
            self._wake_dispatch.set()

    # -- running
    async def run(self, ctx: WebhookContext, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with open_sender(ctx.config.webhook_timeout) as sender, trio.open_nursery() as nursery:
            self._ctx, self._sender, self._nursery = ctx, sender, nursery
            self._fenced = False
            for hook in await ctx.store.read(ctx.store.sync.list_webhooks):
                self._put(hook)
            ctx.events.taps.append(self.tap)
            try:
                nursery.start_soon(self._dispatch)  # resumes from the stored cursor at once
                nursery.start_soon(self._prune)
                task_status.started()
                await trio.sleep_forever()
            finally:
                ctx.events.taps.remove(self.tap)
                self._ctx = self._sender = self._nursery = None
                self._by_id.clear()
                self._lanes.clear()
                nursery.cancel_scope.cancel()

    async def _dispatch(self) -> None:
        assert self._ctx is not None
        store, bus = self._ctx.store, self._ctx.bus
        while True:
            self._wake_dispatch = trio.Event()  # before the read: an event committed after it rings again
            try:
                done = await store.write(Transaction(partial(_fenced_dispatch, bus, at=self._clock()),
                                                     "webhook_dispatch"))  # fmt: skip
            except NotLeader:
                await self._until_leadership_ends("dispatch")
            for webhook_id in done.webhook_ids:
                if (hook := self._by_id.get(webhook_id)) is not None:
                    self._lane(host_key(hook.spec.url)).ring()
            if done.more:
                await trio.lowlevel.checkpoint()
            else:
                await self._wake_dispatch.wait()
                # Under a publish storm, one dispatch per interval takes every event stored meanwhile,
                # instead of one per writer batch (each would move its batch off the event loop).
                await trio.sleep(DISPATCH_INTERVAL)

    async def _prune(self) -> None:
        assert self._ctx is not None
        store, config, bus = self._ctx.store, self._ctx.config, self._ctx.bus
        while True:
            now = self._clock()
            succeeded, failed = now - config.webhook_keep_succeeded, now - config.webhook_keep_failed

            def prune(tx: StoreTx, succeeded: float = succeeded, failed: float = failed) -> int:
                bus.fence(tx)
                return tx.prune_deliveries(succeeded, failed, PRUNE_BATCH)

            try:
                pruned = await store.write(Transaction(prune, "webhook_prune"))
            except NotLeader:
                await self._until_leadership_ends("prune")
            if pruned:
                log_event(log, "webhook_deliveries_pruned", count=pruned)
            if pruned < PRUNE_BATCH:
                await trio.sleep(PRUNE_EVERY)

    async def _until_leadership_ends(self, task: str) -> NoReturn:
        """Another node has taken the lead (the fencing epoch moved on): write and send nothing more.
        This node's leadership check notices within its poll and cancels the service."""
        self._fenced = True
        log_event(log, "webhook_fenced", logging.WARNING, task=task)
        await trio.sleep_forever()

    async def _run_lane(self, lane: Lane) -> None:
        assert self._ctx is not None and self._nursery is not None
        store, nursery = self._ctx.store, self._nursery
        while True:
            if self._fenced:
                await trio.sleep_forever()  # the leadership's end cancels it
            lane.bell = trio.Event()  # before the reads: a delivery made after them rings again
            room = lane.throttle.in_flight_limit - lane.requests
            wait = math.inf
            if room > 0 and lane.hook_ids:
                # One read: the soonest pending deliveries; those due now are sent, the first one not
                # yet due says how long to sleep (a slow timer, only for retries that come due). On the
                # event loop: a few rows by index per webhook, cheaper than the hop to a worker thread.
                rows = await store.read_now(store.sync.pending_deliveries, tuple(lane.hook_ids), room,
                                            tuple(lane.sending))  # fmt: skip
                now = self._clock()
                due = [row for row in rows if row.delivery.next_at <= now]
                for item in due:
                    lane.sending.add(item.delivery.id)
                    lane.requests += 1
                    nursery.start_soon(self._attempt, lane, item)
                if len(due) == room:
                    continue  # full: the next look is when one of them finishes
                if len(rows) > len(due):
                    wait = max(0.0, rows[len(due)].delivery.next_at - now)
            with trio.move_on_after(wait):
                await lane.bell.wait()

    async def _attempt(self, lane: Lane, due: DueDelivery) -> None:
        assert self._ctx is not None
        ctx = self._ctx
        try:
            try:
                await trio.sleep_until(lane.throttle.start_at(trio.current_time()))
                update, tell = await self._try(lane, due)
            finally:
                lane.requests -= 1  # the next request may start while this outcome is written
                lane.ring()
            if update is not None:
                await ctx.store.write(RecordDelivery(update, ctx.bus))
            if tell is not None:
                await tell()  # after the outcome is stored: the device hears once, at most
        except StoreClosed:
            pass  # the server is stopping: the delivery stays pending and is sent after the restart
        except NotLeader:
            # Another node leads now: this outcome is not recorded (the delivery stays pending and the
            # new leader sends it again, with the same Idempotency-Key), and nobody is told.
            self._fenced = True  # and this node sends nothing more
            log_event(log, "webhook_fenced", logging.WARNING, task="outcome", delivery_id=due.delivery.id)
        finally:
            if not self._fenced:  # fenced: it stays taken, so no lane here tries it again
                lane.sending.discard(due.delivery.id)
            lane.ring()

    async def _try(self, lane: Lane, due: DueDelivery) -> tuple[DeliveryUpdate | None, Tell | None]:
        """One attempt: what to store, and what to tell the device after."""
        assert self._ctx is not None and self._sender is not None
        ctx, delivery, event = self._ctx, due.delivery, due.event
        hook = self._by_id.get(delivery.webhook_id)
        started = self._clock()
        if hook is None:
            return None, None  # deleted: its deliveries went with it
        if event is None or hook.spec.disabled:
            reason = "the event is no longer stored" if event is None else "the webhook is disabled"
            log_event(log, "webhook_dropped", logging.WARNING, webhook_id=hook.id, event_id=delivery.event_id,
                      reason=reason)  # fmt: skip
            return not_sent(delivery, reason, started, counter="dropped", history=False), None
        event_log = ctx.event_log
        try:
            request = build(hook, event, int(started))
            pinned = await guard.pin(request.url, ctx.config.webhook_allow_private)
        except (RenderError, templates.TemplateError) as exc:
            error = f"template: {exc}"
            log_event(log, "webhook_failed", logging.WARNING, webhook_id=hook.id, event_id=event.id, error=error)
            update = not_sent(delivery, error, started, counter="failed", history=True)
            return update, partial(answers.publish_error, event_log, hook, event, str(exc))
        except guard.TargetRefused as exc:
            log_event(log, "webhook_refused", logging.WARNING, webhook_id=hook.id, event_id=event.id, reason=str(exc))
            update = not_sent(delivery, f"refused: {exc}", started, counter="refused", history=True)
            return update, partial(answers.publish_error, event_log, hook, event, "target refused")
        result = await self._sender.send(request, pinned)
        lane.throttle.record(result.ok)
        policy = RetryPolicy(ctx.config.webhook_retry_delays, ctx.config.webhook_retry_for)
        update = answered(delivery, result.status, result.error, started, self._clock(), policy)
        log_event(log, "webhook_sent", webhook_id=hook.id, event_id=event.id, attempt=update.attempts,
                  status=result.status, error=result.error or None, state=update.state)  # fmt: skip
        if update.state == "succeeded":
            return update, partial(answers.publish_response, event_log, hook, event, result.body)
        if update.state == "failed":
            log_event(log, "webhook_failed", logging.WARNING, webhook_id=hook.id, event_id=event.id,
                      attempts=update.attempts, error=result.error)  # fmt: skip
            return update, partial(answers.publish_error, event_log, hook, event, result.error)
        return update, None


class RecordDelivery(WriteOp[None]):
    """An attempt's outcome: a row update, an attempt row and a counter, so it may be applied on the
    event loop with the publishes around it (WriteOp.small)."""

    __slots__ = ("bus", "update")
    small: ClassVar[bool] = True

    def __init__(self, update: DeliveryUpdate, bus: ClusterBus) -> None:
        self.update = update
        self.bus = bus

    def apply(self, tx: StoreTx) -> None:
        self.bus.fence(tx)  # a node that lost the lead records nothing (NotLeader)
        tx.update_delivery(self.update)

    def __repr__(self) -> str:  # the writer logs a failed op by its repr
        return f"{type(self).__name__}({self.update!r})"


def _fenced_dispatch(bus: ClusterBus, tx: StoreTx, at: float) -> Dispatched:
    """The dispatcher's write, only while this node's leader epoch is the cluster's (NotLeader else)."""
    bus.fence(tx)
    return dispatch(tx, at=at)
