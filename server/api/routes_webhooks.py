"""Product webhooks (Particle's paths): list, create, show, replace, delete, delivery history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from ..logs import iso
from ..rules.webhook_model import (
    DEFAULT_ERROR_TOPIC,
    DEFAULT_RESPONSE_TOPIC,
    Auth,
    Method,
    Webhook,
    WebhookSpec,
    spec_to_json,
)
from ..store import Store
from ..store.webhook_records import Delivery, DeliveryAttempt, DeliveryCounters
from .deps import ProductAccess, State, product_access
from .models import OkOut
from .models_webhooks import (
    AttemptOut,
    DeliveriesOut,
    DeliveryOut,
    DeliveryStatsOut,
    WebhookCreatedOut,
    WebhookIn,
    WebhookOut,
    WebhooksOut,
)
from .permissions import Perm

router = APIRouter(tags=["webhooks"])

Reader = Annotated[ProductAccess, Depends(product_access(Perm.WEBHOOKS_READ))]
Editor = Annotated[ProductAccess, Depends(product_access(Perm.WEBHOOKS_EDIT))]
WebhookPath = Annotated[int, Path(ge=1, le=2**62, description="webhook ID")]


def spec_of(body: WebhookIn) -> WebhookSpec:
    return WebhookSpec(
        event=body.event, url=body.url, method=Method(body.requestType), headers=dict(body.headers),
        query=dict(body.query), json=body.json_template, form=None if body.form is None else dict(body.form),
        body=body.body, auth=None if body.auth is None else Auth(body.auth.username, body.auth.password),
        response_topic=body.responseTopic or DEFAULT_RESPONSE_TOPIC,
        error_topic=body.errorResponseTopic or DEFAULT_ERROR_TOPIC, response_template=body.responseTemplate,
        no_defaults=body.noDefaults, reject_unauthorized=body.rejectUnauthorized, disabled=body.disabled,
        name=body.name,
    )  # fmt: skip


FAILED_SHOWN = 20  # latest failed deliveries in a webhook's history


def _counters(counters: DeliveryCounters) -> DeliveryStatsOut:
    return DeliveryStatsOut(triggered=counters.triggered, sent=counters.sent, succeeded=counters.succeeded,
                            retried=counters.retried, failed=counters.failed, refused=counters.refused,
                            dropped=counters.dropped, pending=counters.pending)  # fmt: skip


def _attempt(a: DeliveryAttempt) -> AttemptOut:
    return AttemptOut(event_id=a.event_id, at=iso(a.at), attempt=a.attempt, status=a.status,
                      duration_ms=a.duration_ms, error=a.error)  # fmt: skip


def _delivery(d: Delivery) -> DeliveryOut:
    return DeliveryOut(event_id=d.event_id, state=d.state, attempts=d.attempts, last_status=d.last_status,
                       error=d.last_error, created_at=iso(d.created_at), updated_at=iso(d.updated_at))  # fmt: skip


async def webhooks_out(hooks: list[Webhook], state: State) -> list[WebhookOut]:
    """The webhooks with their counters, read from the store (they survive restarts)."""
    store = state.ctx.store
    counters = await store.read(store.sync.webhook_counters, [h.id for h in hooks])
    return [webhook_out(h, counters[h.id]) for h in hooks]


def webhook_out(hook: Webhook, counters: DeliveryCounters) -> WebhookOut:
    return WebhookOut(id=hook.id, product_id=hook.product_id, created_at=iso(hook.created_at),
                      created_by=hook.created_by, config=spec_to_json(hook.spec),
                      counters=_counters(counters))  # fmt: skip


@router.get("/v1/products/{product}/webhooks", response_model=WebhooksOut, summary="The product's webhooks")
async def list_webhooks(access: Reader, state: State) -> WebhooksOut:
    hooks = await state.ops.webhooks.list(access.product.id)
    return WebhooksOut(webhooks=await webhooks_out(hooks, state))


@router.post("/v1/products/{product}/webhooks", response_model=WebhookCreatedOut, status_code=201,
             summary="Create a webhook")  # fmt: skip
async def create_webhook(body: WebhookIn, access: Editor, state: State) -> WebhookCreatedOut:
    hook = await state.ops.webhooks.create(access.actor, access.product.id, spec_of(body))
    (out,) = await webhooks_out([hook], state)
    return WebhookCreatedOut(**out.model_dump(), secret=hook.secret)


@router.get("/v1/products/{product}/webhooks/{webhook_id}", response_model=WebhookOut, summary="One webhook")
async def get_webhook(webhook_id: WebhookPath, access: Reader, state: State) -> WebhookOut:
    (out,) = await webhooks_out([await state.ops.webhooks.get(access.product.id, webhook_id)], state)
    return out


@router.put("/v1/products/{product}/webhooks/{webhook_id}", response_model=WebhookOut,
            summary="Replace a webhook's configuration (its secret stays)")  # fmt: skip
async def replace_webhook(webhook_id: WebhookPath, body: WebhookIn, access: Editor, state: State) -> WebhookOut:
    hook = await state.ops.webhooks.update(access.actor, access.product.id, webhook_id, spec_of(body))
    (out,) = await webhooks_out([hook], state)
    return out


@router.delete("/v1/products/{product}/webhooks/{webhook_id}", response_model=OkOut, summary="Delete a webhook")
async def delete_webhook(webhook_id: WebhookPath, access: Editor, state: State) -> OkOut:
    await state.ops.webhooks.delete(access.actor, access.product.id, webhook_id)
    return OkOut()


@router.get("/v1/products/{product}/webhooks/{webhook_id}/deliveries", response_model=DeliveriesOut,
            summary="A webhook's delivery counters, latest requests and latest failed deliveries")  # fmt: skip
async def webhook_deliveries(webhook_id: WebhookPath, access: Reader, state: State) -> DeliveriesOut:
    hook = await state.ops.webhooks.get(access.product.id, webhook_id)
    store = state.ctx.store

    def history(s: Store) -> tuple[DeliveryCounters, list[DeliveryAttempt], list[DeliveryAttempt], list[Delivery]]:
        return (s.webhook_counters([hook.id])[hook.id], s.latest_attempts(hook.id, True),
                s.latest_attempts(hook.id, False), s.get_deliveries(hook.id, "failed", FAILED_SHOWN))  # fmt: skip

    counters, successes, errors, failed = await store.read(history, store.sync)
    return DeliveriesOut(counters=_counters(counters), successes=[_attempt(a) for a in successes],
                         errors=[_attempt(a) for a in errors],
                         failed_deliveries=[_delivery(d) for d in failed])  # fmt: skip
