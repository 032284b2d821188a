"""One event and one webhook make one HTTP request: pure, so every rule here is tested as data.

Particle's defaults: unless `noDefaults`, the request carries `event`, `data`,
`published_at` and `coreid` (here also `productID`), as query parameters of a GET or DELETE
and as form fields otherwise (or merged into a JSON object template). Ours on top, which a
template cannot override: `Idempotency-Key` (the event's ID) and an HMAC-SHA256 signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..logs import iso
from ..rules.webhook_model import Method, Webhook
from ..store.records import EventRecord
from . import templates

SIGNATURE_HEADER = "X-Fleetgate-Signature"
EVENT_ID_HEADER = "Idempotency-Key"
USER_AGENT = "Fleetgate-Webhook/1"
_RESERVED = {SIGNATURE_HEADER.lower(), EVENT_ID_HEADER.lower(), "content-length", "host", "transfer-encoding"}


class RenderError(ValueError):
    """The webhook's templates made something that cannot be sent (bad JSON, a header with a
    line break): a delivery error, recorded like a failed request and not retried."""


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    method: str
    url: str  # the rendered URL, query included
    headers: dict[str, str]
    body: bytes
    verify_tls: bool

    @property
    def host_key(self) -> str:
        return host_key(self.url)


def host_key(url: str) -> str:
    """scheme://host:port: requests to one target share its throttle. A webhook's scheme and
    host are literal, so its URL template gives the same key as every URL it renders."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def defaults(event: EventRecord, product_id: int) -> dict[str, str]:
    return {
        "event": event.name,
        "data": event.data.decode("utf-8", errors="replace"),
        "published_at": iso(event.published_at),
        "coreid": event.device_id,
        "productID": str(product_id),
    }


def signature(secret: str, timestamp: int, event_id: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<event id>." + body>`."""
    message = f"{timestamp}.{event_id}.".encode() + body
    digest = hmac.new(bytes.fromhex(secret), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _render_tree(value: Any, context: dict[str, Any]) -> Any:
    """A JSON object template: every string in it (keys too) is a template."""
    if isinstance(value, str):
        return templates.render(value, context)
    if isinstance(value, list):
        return [_render_tree(v, context) for v in value]
    if isinstance(value, dict):
        return {templates.render(k, context): _render_tree(v, context) for k, v in value.items()}
    return value


def _json_body(template: Any, context: dict[str, Any], base: dict[str, str] | None) -> bytes:
    if isinstance(template, str):
        text = templates.render(template, context, templates.JSON_STRING)
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise RenderError(f"the json template did not render to JSON: {exc}") from None
    else:
        value = _render_tree(template, context)
    if base is not None and isinstance(value, dict):
        value = {**base, **value}
    return json.dumps(value, separators=(",", ":")).encode()


def _fields(source: dict[str, str], context: dict[str, Any]) -> dict[str, str]:
    return {k: templates.render(v, context) for k, v in source.items()}


def build(webhook: Webhook, event: EventRecord, timestamp: int) -> OutgoingRequest:
    assert event.id is not None
    spec = webhook.spec
    context = templates.variables(event, webhook.product_id)
    base = None if spec.no_defaults else defaults(event, webhook.product_id)
    headers: dict[str, str] = {"User-Agent": USER_AGENT}
    query = _fields(spec.query, context)
    body = b""
    if spec.json is not None:
        body = _json_body(spec.json, context, base)
        headers["Content-Type"] = "application/json"
    elif spec.body is not None:
        body = templates.render(spec.body, context).encode()
        headers["Content-Type"] = "text/plain; charset=utf-8"
    elif spec.method in (Method.GET, Method.DELETE):
        query = {**(base or {}), **query}
    elif spec.form is not None or base is not None:
        body = urlencode({**(base or {}), **_fields(spec.form or {}, context)}).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    for name, value in spec.headers.items():
        rendered = templates.render(value, context)
        if "\r" in rendered or "\n" in rendered:
            raise RenderError(f"header {name!r} rendered with a line break")
        if name.lower() not in _RESERVED:
            headers[name] = rendered
    if spec.auth is not None:
        pair = f"{spec.auth.username}:{spec.auth.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    headers[EVENT_ID_HEADER] = str(event.id)
    headers[SIGNATURE_HEADER] = signature(webhook.secret, timestamp, event.id, body)
    return OutgoingRequest(spec.method.value, _url(spec.url, context, query), headers, body, spec.reject_unauthorized)


def _url(template: str, context: dict[str, Any], query: dict[str, str]) -> str:
    parts = urlsplit(templates.render(template, context, templates.URL))
    extra = urlencode(query)
    joined = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", joined, ""))
