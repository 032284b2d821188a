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
from ..webhooks.history import Attempt, DeliveryStats
from .deps import ProductAccess, State, product_access
from .models import OkOut
from .models_webhooks import (
    AttemptOut,
    DeliveriesOut,
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


def _counters(stats: DeliveryStats) -> DeliveryStatsOut:
    return DeliveryStatsOut(triggered=stats.triggered, sent=stats.sent, succeeded=stats.succeeded,
                            retried=stats.retried, failed=stats.failed, refused=stats.refused,
                            dropped=stats.dropped)  # fmt: skip


def _attempt(a: Attempt) -> AttemptOut:
    return AttemptOut(event_id=a.event_id, at=iso(a.at), attempt=a.attempt, status=a.status,
                      duration_ms=a.duration_ms, error=a.error)  # fmt: skip


def webhook_out(hook: Webhook, state: State) -> WebhookOut:
    return WebhookOut(id=hook.id, product_id=hook.product_id, created_at=iso(hook.created_at),
                      created_by=hook.created_by, config=spec_to_json(hook.spec),
                      counters=_counters(state.ctx.webhooks.stats_of(hook.id)))  # fmt: skip


@router.get("/v1/products/{product}/webhooks", response_model=WebhooksOut, summary="The product's webhooks")
async def list_webhooks(access: Reader, state: State) -> WebhooksOut:
    hooks = await state.ops.webhooks.list(access.product.id)
    return WebhooksOut(webhooks=[webhook_out(h, state) for h in hooks])


@router.post("/v1/products/{product}/webhooks", response_model=WebhookCreatedOut, status_code=201,
             summary="Create a webhook")  # fmt: skip
async def create_webhook(body: WebhookIn, access: Editor, state: State) -> WebhookCreatedOut:
    hook = await state.ops.webhooks.create(access.actor, access.product.id, spec_of(body))
    return WebhookCreatedOut(**webhook_out(hook, state).model_dump(), secret=hook.secret)


@router.get("/v1/products/{product}/webhooks/{webhook_id}", response_model=WebhookOut, summary="One webhook")
async def get_webhook(webhook_id: WebhookPath, access: Reader, state: State) -> WebhookOut:
    return webhook_out(await state.ops.webhooks.get(access.product.id, webhook_id), state)


@router.put("/v1/products/{product}/webhooks/{webhook_id}", response_model=WebhookOut,
            summary="Replace a webhook's configuration (its secret stays)")  # fmt: skip
async def replace_webhook(webhook_id: WebhookPath, body: WebhookIn, access: Editor, state: State) -> WebhookOut:
    hook = await state.ops.webhooks.update(access.actor, access.product.id, webhook_id, spec_of(body))
    return webhook_out(hook, state)


@router.delete("/v1/products/{product}/webhooks/{webhook_id}", response_model=OkOut, summary="Delete a webhook")
async def delete_webhook(webhook_id: WebhookPath, access: Editor, state: State) -> OkOut:
    await state.ops.webhooks.delete(access.actor, access.product.id, webhook_id)
    return OkOut()


@router.get("/v1/products/{product}/webhooks/{webhook_id}/deliveries", response_model=DeliveriesOut,
            summary="A webhook's delivery counters and latest requests")  # fmt: skip
async def webhook_deliveries(webhook_id: WebhookPath, access: Reader, state: State) -> DeliveriesOut:
    hook = await state.ops.webhooks.get(access.product.id, webhook_id)
    stats = state.ctx.webhooks.stats_of(hook.id)
    return DeliveriesOut(counters=_counters(stats), successes=[_attempt(a) for a in stats.successes],
                         errors=[_attempt(a) for a in stats.errors])  # fmt: skip
