"""Webhook delivery: background workers, one lane per target host, nothing waits on a target.

The broker's tap hands each stored event to the lanes of the webhooks it triggers, without
waiting (a full lane drops the request and counts it). Each lane has its own bounded queue,
its own workers and its own throttle, so a target that is down or slow costs only its own
lane: never a device session, never another host's webhooks. A failed request (no answer in
time, 5xx, 429) is tried again after each of the configured delays, in a task of its own;
then it counts as failed and the device gets `hook-error/<event>/0`. A 2xx answer goes back
to the device as `hook-response/<event>/<i>` events of at most 512 bytes each.

History and counters live in memory (they restart with the server), as do the retries
waiting for their time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

import httpx
import trio

from protocol import limits

from ..config import ServerConfig
from ..events.broker import EventBroker
from ..events.feeds import API_SOURCE
from ..events.log import EventLog
from ..events.publishing import EventFeed
from ..logs import log_event, now
from ..rules.webhook_model import HOOK_PREFIX, Webhook
from ..store import AsyncStore, Transaction
from ..store.records import EventRecord
from ..store.tx import StoreTx
from . import guard, templates
from .history import Attempt, DeliveryStats
from .request import OutgoingRequest, RenderError, build, host_key
from .throttle import NORMAL_IN_FLIGHT, HostThrottle


class WebhookContext(Protocol):
    """The parts of the server the delivery uses (WebhookContext has them; it holds this service, so this
    module must not import it)."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def store(self) -> AsyncStore: ...

    @property
    def events(self) -> EventBroker: ...

    @property
    def event_log(self) -> EventLog: ...

    @property
    def feed(self) -> EventFeed: ...  # in cluster mode, where its tail stands (webhook cursor)


log = logging.getLogger("fleetgate.webhooks")

CURSOR_EVERY = 1.0  # seconds between writes of the webhook cursor (cluster mode)


def _set_cursor(tx: StoreTx, *, event_id: int) -> None:
    tx.set_webhook_cursor(event_id)


LANE_QUEUE = 256  # requests waiting per target host
MAX_LANES = 256  # distinct target hosts at once
MAX_PENDING_RETRIES = 10_000  # requests waiting for their retry time
MAX_RESPONSE = 32 * 512  # response bytes sent back to the device (32 chunks); the rest is cut
CHUNK = 512  # bytes per hook-response event (Particle's)
RESPONSE_TTL = 60


def _status_text(status: int) -> str:
    # The standard phrase, not the target's (HTTP/1.1 servers may send none, HTTP/2 has none).
    return f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".strip()


def _retryable(status: int | None) -> bool:
    return status is None or status >= 500 or status in (408, 429)


@dataclass(frozen=True, slots=True)
class Job:
    webhook_id: int
    event: EventRecord
    attempt: int = 1


@dataclass(slots=True)
class Lane:
    send: trio.MemorySendChannel[Job]
    receive: trio.MemoryReceiveChannel[Job]
    throttle: HostThrottle = field(default_factory=HostThrottle)
    slots: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(NORMAL_IN_FLIGHT))


@dataclass(frozen=True, slots=True)
class Result:
    status: int | None
    body: bytes
    error: str


class WebhookService:
    """Owns the webhooks in force (a copy of the store's, updated by the operations) and their
    delivery. `tap` is the broker's; `run` lives in the server's background nursery."""

    def __init__(self) -> None:
        self._by_product: dict[int, list[Webhook]] = {}
        self._by_id: dict[int, Webhook] = {}
        self.stats: dict[int, DeliveryStats] = {}
        self._lanes: dict[str, Lane] = {}
        self._nursery: trio.Nursery | None = None
        self._ctx: WebhookContext | None = None
        self._pending_retries = 0
        self._tapped = 0  # the largest event ID handed to tap (cluster mode stores it: the cursor)
        self._clients: tuple[httpx.AsyncClient, httpx.AsyncClient] | None = None  # TLS verified, not

    # -- the webhooks in force
    def load(self, webhooks: list[Webhook]) -> None:
        self._by_product.clear()
        self._by_id.clear()
        for hook in webhooks:
            self.put(hook)

    def put(self, webhook: Webhook) -> None:
        self.remove(webhook.id)
        self._by_id[webhook.id] = webhook
        self._by_product.setdefault(webhook.product_id, []).append(webhook)
        self.stats.setdefault(webhook.id, DeliveryStats())

    def remove(self, webhook_id: int) -> None:
        old = self._by_id.pop(webhook_id, None)
        if old is not None:
            self._by_product[old.product_id] = [h for h in self._by_product[old.product_id] if h.id != webhook_id]

    def stats_of(self, webhook_id: int) -> DeliveryStats:
        return self.stats.setdefault(webhook_id, DeliveryStats())

    # -- triggering
    def tap(self, event: EventRecord) -> None:
        """Called by the broker for every stored event; never waits."""
        if self._nursery is None or event.id is None:
            return
        self._tapped = max(self._tapped, event.id)
        if event.product_id is None:
            return
        # Only a publisher holding the webhooks privilege triggers them, and never the cloud's
        # own webhook events (a response that triggered a webhook could loop forever).
        if not event.webhooks or event.to_device is not None or event.name.startswith(HOOK_PREFIX):
            return
        for hook in self._by_product.get(event.product_id, ()):
            if hook.triggered_by(event.name):
                self.stats_of(hook.id).triggered += 1
                self._enqueue(hook, Job(hook.id, event))

    def _enqueue(self, hook: Webhook, job: Job) -> None:
        lane = self._lane(host_key(hook.spec.url))
        try:
            if lane is None:
                raise trio.WouldBlock
            lane.send.send_nowait(job)
        except trio.WouldBlock:
            self.stats_of(hook.id).dropped += 1
            log_event(log, "webhook_dropped", logging.WARNING, webhook_id=hook.id, event_id=job.event.id,
                      reason="queue full" if lane is not None else "too many target hosts")  # fmt: skip

    def _lane(self, host: str) -> Lane | None:
        lane = self._lanes.get(host)
        if lane is None and self._nursery is not None and len(self._lanes) < MAX_LANES:
            send, receive = trio.open_memory_channel[Job](LANE_QUEUE)
            lane = self._lanes[host] = Lane(send, receive)
            for _ in range(NORMAL_IN_FLIGHT):
                self._nursery.start_soon(self._worker, lane)
        return lane

    # -- running
    async def run(self, ctx: WebhookContext, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._ctx = ctx
        self.load(await ctx.store.read(ctx.store.sync.list_webhooks))
        timeout = httpx.Timeout(ctx.config.webhook_timeout)
        # Redirects are not followed: a redirect could lead past the address guard.
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False) as verified,
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=False) as unverified,
            trio.open_nursery() as nursery,
        ):
            self._clients = (verified, unverified)
            self._nursery = nursery
            ctx.events.taps.append(self.tap)
            live_from = ctx.feed.position  # the tap sees every event after it (same tick: nothing between)
            if live_from is not None:  # cluster mode: resume from the stored cursor, keep it moving
                nursery.start_soon(self._resume_from_cursor, ctx, live_from)
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                ctx.events.taps.remove(self.tap)
                self._nursery = None
                nursery.cancel_scope.cancel()

    async def _resume_from_cursor(self, ctx: WebhookContext, live_from: int) -> None:
        """Cluster mode, on the leader: trigger what the previous leader had not queued yet (events
        after the stored cursor, up to where the live tap starts), then store how far this leader
        has queued, every CURSOR_EVERY seconds (at least once: a failover may send some again,
        with the same Idempotency-Key)."""
        store = ctx.store
        cursor = await store.read(store.sync.webhook_cursor)
        after = live_from if cursor is None else cursor
        while after < live_from:
            events = await store.read(store.sync.list_events, after_id=after, limit=1000)
            for event in events:
                if event.id is None or event.id > live_from:
                    break
                self.tap(event)
            if not events or events[-1].id is None:
                break
            after = events[-1].id
        written = cursor
        while True:
            mark = max(live_from, self._tapped)
            if mark != written:
                await store.write(Transaction(partial(_set_cursor, event_id=mark), "webhook_cursor"))
                written = mark
            await trio.sleep(CURSOR_EVERY)

    async def _worker(self, lane: Lane) -> None:
        async for job in lane.receive:
            async with lane.slots:
                await trio.sleep_until(lane.throttle.start_at(trio.current_time()))
                await self._deliver(job, lane)
            lane.slots.total_tokens = lane.throttle.in_flight_limit

    async def _deliver(self, job: Job, lane: Lane) -> None:
        hook = self._by_id.get(job.webhook_id)
        if hook is None or hook.spec.disabled:
            return  # deleted or disabled since it was triggered
        stats, event, started = self.stats_of(hook.id), job.event, now()
        assert self._ctx is not None and event.id is not None
        try:
            request = build(hook, event, int(started))
            pinned = await guard.pin(request.url, self._ctx.config.webhook_allow_private)
        except (RenderError, templates.TemplateError) as exc:
            stats.record(Attempt(event.id, started, job.attempt, None, 0.0, f"template: {exc}"))
            await self._give_up(hook, job, str(exc))
            return
        except guard.TargetRefused as exc:
            stats.refused += 1
            stats.record(Attempt(event.id, started, job.attempt, None, 0.0, f"refused: {exc}"))
            log_event(log, "webhook_refused", logging.WARNING, webhook_id=hook.id, event_id=event.id, reason=str(exc))
            await self._publish_error(hook, event, "target refused")
            return
        clock = trio.current_time()
        result = await self._send(request, pinned)
        took = round((trio.current_time() - clock) * 1000, 1)
        stats.record(Attempt(event.id, started, job.attempt, result.status, took, result.error))
        lane.throttle.record(not result.error)
        log_event(log, "webhook_sent", webhook_id=hook.id, event_id=event.id, attempt=job.attempt,
                  status=result.status, ms=took, error=result.error or None)  # fmt: skip
        if not result.error:
            stats.succeeded += 1
            await self._publish_response(hook, event, result.body)
            return
        delays = self._ctx.config.webhook_retry_delays
        if _retryable(result.status) and job.attempt <= len(delays) and self._pending_retries < MAX_PENDING_RETRIES:
            stats.retried += 1
            assert self._nursery is not None
            self._pending_retries += 1
            self._nursery.start_soon(self._retry_later, hook, replace(job, attempt=job.attempt + 1),
                                     delays[job.attempt - 1])  # fmt: skip
            return
        await self._give_up(hook, job, result.error)

    async def _send(self, request: OutgoingRequest, pinned: guard.Pinned) -> Result:
        assert self._clients is not None and self._ctx is not None
        client = self._clients[0 if request.verify_tls else 1]
        headers = {**request.headers, "Host": pinned.host_header}
        extensions = {} if pinned.sni_hostname is None else {"sni_hostname": pinned.sni_hostname}
        try:
            req = client.build_request(request.method, pinned.url, headers=headers, content=request.body,
                                       extensions=extensions)  # fmt: skip
            response = await client.send(req, stream=True)
            try:
                body = bytearray()
                async for piece in response.aiter_bytes():
                    body += piece[: MAX_RESPONSE - len(body)]
                    if len(body) >= MAX_RESPONSE:
                        break
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return Result(None, b"", f"no answer within {self._ctx.config.webhook_timeout} s")
        except httpx.HTTPError as exc:
            return Result(None, b"", f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= response.status_code < 300:
            return Result(response.status_code, bytes(body), "")
        return Result(response.status_code, bytes(body), _status_text(response.status_code))

    async def _retry_later(self, hook: Webhook, job: Job, delay: float) -> None:
        try:
            await trio.sleep(delay)
        finally:
            self._pending_retries -= 1
        self._enqueue(hook, job)

    async def _give_up(self, hook: Webhook, job: Job, error: str) -> None:
        self.stats_of(hook.id).failed += 1
        log_event(log, "webhook_failed", logging.WARNING, webhook_id=hook.id, event_id=job.event.id,
                  attempts=job.attempt, error=error)  # fmt: skip
        await self._publish_error(hook, job.event, error)

    # -- answers to the device
    async def _publish_response(self, hook: Webhook, event: EventRecord, body: bytes) -> None:
        if hook.spec.response_template is not None:
            body = _render_response(hook.spec.response_template, body).encode()
        await self._publish_to_device(hook, event, hook.spec.response_topic, body)

    async def _publish_error(self, hook: Webhook, event: EventRecord, error: str) -> None:
        await self._publish_to_device(hook, event, hook.spec.error_topic, error.encode()[:CHUNK])

    async def _publish_to_device(self, hook: Webhook, event: EventRecord, topic: str, body: bytes) -> None:
        if event.device_id == API_SOURCE:
            return  # published through the API: there is no device to answer
        assert self._ctx is not None
        context = templates.variables(event, hook.product_id)
        try:
            name = templates.render(topic, context)
        except templates.TemplateError:
            return  # checked when the webhook was saved
        chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)] or [b""]
        event_log = self._ctx.event_log
        for index, chunk in enumerate(chunks):
            record = EventRecord(event.device_id, _topic(name, index), chunk, RESPONSE_TTL, True, now(),
                                 product_id=hook.product_id, to_device=event.device_id)  # fmt: skip
            # Queued, not awaited one by one: the writer commits the chunks together and runs
            # these callbacks in order, so the device gets them in order (as sessions publish).
            await event_log.append(record)  # stored, then published; an event not stored is not sent


def _topic(name: str, index: int) -> str:
    """`<topic>/<index>`, the topic cut so the whole fits an event name (64 bytes of UTF-8): a
    device subscribes by prefix, and every prefix of the topic still matches."""
    suffix = f"/{index}"
    room = limits.MAX_EVENT_NAME - len(suffix)
    return name.encode()[:room].decode("utf-8", errors="ignore") + suffix


def _render_response(template: str, body: bytes) -> str:
    """Particle's responseTemplate: the response's JSON fields are its variables."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    context = parsed if isinstance(parsed, dict) else {}
    try:
        return templates.render(template, context)
    except templates.TemplateError:
        return body.decode("utf-8", errors="replace")
