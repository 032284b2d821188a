"""The console's webhooks: list with delivery counters, create / edit (the common fields; the
rest of a webhook's configuration is kept as it is) and delete, and a webhook's delivery history."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from ..api.deps import ProductAccess, State
from ..api.permissions import Perm
from ..rules.errors import Invalid, OperationError
from ..rules.webhook_model import Method, WebhookSpec
from ..store import Store
from .access import product_page
from .product_pages import back
from .render import page
from .session import CsrfChecked

router = APIRouter(prefix="/console/products/{product}", include_in_schema=False)

Reader = Annotated[ProductAccess, Depends(product_page(Perm.WEBHOOKS_READ))]
WebhookId = Annotated[int, Path(ge=1, le=2**62)]
FIELDS = ("name", "event", "url", "method", "headers", "json", "disabled")
HISTORY = 20


def _headers(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise Invalid(f"a header line is `Name: value`: {line[:60]!r} is not", "headers")
        out[name.strip()] = value.strip()
    return out


def _json(text: str) -> Any:
    """An object of templates when the text is JSON, else the text itself as one template."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _spec(form: dict[str, str], base: WebhookSpec | None) -> WebhookSpec:
    try:
        method = Method(form.get("method", "POST"))
    except ValueError:
        raise Invalid("choose a request method from the list", "method") from None
    fields: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "event": form.get("event", "").strip(),
        "url": form.get("url", "").strip(),
        "method": method,
        "headers": _headers(form.get("headers", "")),
        "json": _json(form.get("json", "")),
        "disabled": form.get("disabled") == "on",
    }
    return WebhookSpec(**fields) if base is None else replace(base, **fields)


def _form_of(spec: WebhookSpec) -> dict[str, str]:
    body = "" if spec.json is None else spec.json if isinstance(spec.json, str) else json.dumps(spec.json, indent=2)
    return {
        "name": spec.name, "event": spec.event, "url": spec.url, "method": spec.method.value,
        "headers": "\n".join(f"{k}: {v}" for k, v in spec.headers.items()), "json": body,
        "disabled": "on" if spec.disabled else "",
    }  # fmt: skip


async def _posted(request: Request) -> dict[str, str]:
    data = await request.form()
    return {k: v for k in FIELDS if isinstance(v := data.get(k), str)}


@router.get("/webhooks")
async def webhooks(request: Request, access: Reader, state: State) -> Response:
    hooks = await state.ops.webhooks.list(access.product.id)
    counters = await state.ctx.store.read(state.store.webhook_counters, [h.id for h in hooks])
    return page(request, "webhooks.html", access.principal, access, tab="webhooks", hooks=hooks,
                counters=counters, methods=[m.value for m in Method])  # fmt: skip


async def _edit_page(
    request: Request, access: ProductAccess, state: State, webhook_id: int | None, form: dict[str, str], **extra: Any
) -> Response:
    return page(request, "webhook_edit.html", access.principal, access, tab="webhooks", webhook_id=webhook_id,
                form=form, methods=[m.value for m in Method], **extra)  # fmt: skip


@router.get("/webhooks/new")
async def new_webhook(request: Request, access: Reader, state: State) -> Response:
    return await _edit_page(request, access, state, None, {"method": "POST"})


@router.post("/webhooks", dependencies=[CsrfChecked])
async def create_webhook(request: Request, access: Reader, state: State) -> Response:
    access.require(Perm.WEBHOOKS_EDIT)
    form = await _posted(request)
    try:
        hook = await state.ops.webhooks.create(access.actor, access.product.id, _spec(form, None))
    except OperationError as exc:
        return await _edit_page(request, access, state, None, form, error=_message(exc), status=400)
    return back(f"/console/products/{access.product.id}/webhooks/{hook.id}", f"Webhook {hook.id} created.")


def _message(exc: OperationError) -> str:
    return f"{exc.message} ({exc.field})" if exc.field and exc.field not in exc.message else exc.message


@router.get("/webhooks/{webhook_id}")
async def webhook(request: Request, webhook_id: WebhookId, access: Reader, state: State) -> Response:
    hook = await state.ops.webhooks.get(access.product.id, webhook_id)

    def history(s: Store) -> tuple[Any, Any, Any, Any]:
        return (s.webhook_counters([hook.id])[hook.id], s.latest_attempts(hook.id, True),
                s.latest_attempts(hook.id, False), s.get_deliveries(hook.id, "failed", HISTORY))  # fmt: skip

    counters, successes, errors, failed = await state.ctx.store.read(history, state.store)
    return page(request, "webhook.html", access.principal, access, tab="webhooks", hook=hook, counters=counters,
                successes=successes, errors=errors, failed=failed)  # fmt: skip


@router.get("/webhooks/{webhook_id}/edit")
async def edit_webhook(request: Request, webhook_id: WebhookId, access: Reader, state: State) -> Response:
    hook = await state.ops.webhooks.get(access.product.id, webhook_id)
    return await _edit_page(request, access, state, webhook_id, _form_of(hook.spec))


@router.post("/webhooks/{webhook_id}", dependencies=[CsrfChecked])
async def update_webhook(request: Request, webhook_id: WebhookId, access: Reader, state: State) -> Response:
    access.require(Perm.WEBHOOKS_EDIT)
    hook = await state.ops.webhooks.get(access.product.id, webhook_id)
    form = await _posted(request)
    try:
        await state.ops.webhooks.update(access.actor, access.product.id, webhook_id, _spec(form, hook.spec))
    except OperationError as exc:
        return await _edit_page(request, access, state, webhook_id, form, error=_message(exc), status=400)
    return back(f"/console/products/{access.product.id}/webhooks/{webhook_id}", "Saved.")


@router.post("/webhooks/{webhook_id}/delete", dependencies=[CsrfChecked])
async def delete_webhook(webhook_id: WebhookId, access: Reader, state: State) -> Response:
    access.require(Perm.WEBHOOKS_EDIT)
    await state.ops.webhooks.delete(access.actor, access.product.id, webhook_id)
    return back(f"/console/products/{access.product.id}/webhooks", f"Webhook {webhook_id} deleted.")
