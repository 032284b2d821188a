"""POST /v1/devices/events: publish an event as a user (Particle's publishEvent, `particle publish`).

A user's own event goes to that user's streams only (`GET /v1/devices/events`, where Particle
delivers it too). It has no product, so it triggers no webhook and reaches no device: webhooks
and device subscriptions are per product, and deny by default. To trigger a product's webhooks,
publish to the product (`POST /v1/products/{product}/events`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ..events.feeds import user_source
from .deps import Principal, State, user_with_scope
from .form_bodies import json_or_form, openapi_body
from .models import OkOut
from .routes_events import (
    EventIn,
    publish_as,
)

router = APIRouter(tags=["events"])


@router.post("/v1/devices/events", response_model=OkOut, summary="Publish an event to the caller's own stream",
             openapi_extra=openapi_body(EventIn))  # fmt: skip
async def publish_user_event(
    caller: Annotated[Principal, Depends(user_with_scope("events:write"))],
    body: Annotated[EventIn, Depends(json_or_form(EventIn))],  # particle-cli sends a form
    state: State,
) -> OkOut:
    user = caller.require_user()
    await publish_as(state, body, user_source(user.id), None)
    return OkOut()
