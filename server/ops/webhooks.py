"""Operator actions on webhooks: create, replace, delete. Each checks every template and the
URL first, then writes one transaction with an audit entry and a `WebhooksChanged` on the cluster
bus, which the webhook dispatch (on whichever node leads) acts on once it commits."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..cluster import WebhooksChanged
from ..logs import now
from ..rules.errors import Conflict, Invalid, NotFound
from ..rules.webhook_model import HOOK_PREFIX, MAX_TEMPLATE, MAX_URL, MAX_WEBHOOKS_PER_PRODUCT, Webhook, WebhookSpec
from ..store import Transaction
from ..store.tx import StoreTx
from ..webhooks import guard, templates

if TYPE_CHECKING:  # session.py imports this package through ServerContext
    from ..context import ServerContext

SECRET_BYTES = 32


def _templates(spec: WebhookSpec) -> Iterator[tuple[str, str]]:
    """(field, template source) for every template in a webhook."""
    yield "url", spec.url
    yield "responseTopic", spec.response_topic
    yield "errorResponseTopic", spec.error_topic
    for key, value in spec.headers.items():
        yield f"headers.{key}", value
    for key, value in spec.query.items():
        yield f"query.{key}", value
    for key, value in (spec.form or {}).items():
        yield f"form.{key}", value
    if spec.body is not None:
        yield "body", spec.body
    if spec.response_template is not None:
        yield "responseTemplate", spec.response_template
    yield from _json_templates("json", spec.json)


def _json_templates(path: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_templates(f"{path}[{i}]", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", key
            yield from _json_templates(f"{path}.{key}", item)


def check_spec(spec: WebhookSpec, allow_private: bool) -> None:
    """Every rule a webhook must meet before it is saved; Invalid names the field."""
    if not spec.event or spec.event.startswith(HOOK_PREFIX):
        raise Invalid("event must be a non-empty event name prefix, not one of the cloud's hook-* events", "event")
    if len(spec.url) > MAX_URL:
        raise Invalid(f"url is at most {MAX_URL} characters", "url")
    parts = urlsplit(spec.url)
    if parts.scheme not in ("http", "https"):
        raise Invalid("url must be an http:// or https:// URL", "url")
    if not parts.hostname or "{" in parts.netloc or "}" in parts.netloc:
        raise Invalid("url must name its host literally (templates may fill the path and query only)", "url")
    if "@" in parts.netloc:
        raise Invalid("url must not carry credentials: use auth", "url")
    try:
        guard.check_name(parts.hostname)
    except guard.TargetRefused as exc:
        raise Invalid(f"url: {exc}", "url") from None
    try:
        guard.check_literal(parts.hostname, allow_private)
    except guard.TargetRefused as exc:
        raise Invalid(f"url: {exc}; the operator may allow it with --webhook-allow-private", "url") from None
    if sum(x is not None for x in (spec.json, spec.form, spec.body)) > 1:
        raise Invalid("give at most one of json, form and body", "json")
    for name in spec.headers:
        if not name or any(c in name for c in ":\r\n ") or not name.isascii():
            raise Invalid(f"header name {name!r} is not a valid HTTP header name", "headers")
    for field, source in _templates(spec):
        if len(source) > MAX_TEMPLATE:
            raise Invalid(f"{field} is at most {MAX_TEMPLATE} characters", field)
        try:
            templates.check(source)
        except templates.TemplateError as exc:
            raise Invalid(f"{field} is not a valid template: {exc}", field) from None


class WebhookOperations:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def list(self, product_id: int) -> list[Webhook]:
        hooks: list[Webhook] = await self.ctx.store.read(self.ctx.store.sync.list_webhooks, product_id)
        return hooks

    async def get(self, product_id: int, webhook_id: int) -> Webhook:
        for hook in await self.list(product_id):
            if hook.id == webhook_id:
                return hook
        raise NotFound(f"webhook {webhook_id} not found in product {product_id}")

    async def create(self, actor: str, product_id: int, spec: WebhookSpec) -> Webhook:
        check_spec(spec, self.ctx.config.webhook_allow_private)
        secret, at = secrets.token_hex(SECRET_BYTES), now()

        def tx(s: StoreTx) -> int:
            if len(s.list_webhooks(product_id)) >= MAX_WEBHOOKS_PER_PRODUCT:
                raise Conflict(f"a product has at most {MAX_WEBHOOKS_PER_PRODUCT} webhooks")
            webhook_id = s.insert_webhook(product_id, spec, secret, at, actor)
            s.append_audit(at, actor, "webhook_created", product_id=product_id,
                            detail={"webhook_id": webhook_id, "event": spec.event, "url": spec.url})  # fmt: skip
            self.ctx.bus.notify(s, WebhooksChanged(product_id))
            return webhook_id

        webhook_id = await self._write(Transaction(tx, "webhook_create"))
        return Webhook(webhook_id, product_id, spec, secret, at, actor)

    async def update(self, actor: str, product_id: int, webhook_id: int, spec: WebhookSpec) -> Webhook:
        check_spec(spec, self.ctx.config.webhook_allow_private)
        old = await self.get(product_id, webhook_id)
        at = now()

        def tx(s: StoreTx) -> int:
            s.update_webhook(webhook_id, spec)
            s.append_audit(at, actor, "webhook_updated", product_id=product_id,
                            detail={"webhook_id": webhook_id, "disabled": spec.disabled})  # fmt: skip
            self.ctx.bus.notify(s, WebhooksChanged(product_id))
            return webhook_id

        await self._write(Transaction(tx, "webhook_update"))
        return replace(old, spec=spec)

    async def delete(self, actor: str, product_id: int, webhook_id: int) -> None:
        await self.get(product_id, webhook_id)
        at = now()

        def tx(s: StoreTx) -> int:
            s.delete_webhook(webhook_id)
            s.append_audit(at, actor, "webhook_deleted", product_id=product_id, detail={"webhook_id": webhook_id})
            self.ctx.bus.notify(s, WebhooksChanged(product_id))
            return webhook_id

        await self._write(Transaction(tx, "webhook_delete"))

    async def _write(self, tx: Transaction[int]) -> int:
        """Re-raises what the transaction raised; returns once this node has acted on its message."""
        result = await self.ctx.store.write(tx)
        await self.ctx.bus.caught_up()
        return result
