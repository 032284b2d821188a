"""A product webhook as stored, and the limits that shape one.

Field names follow Particle's webhook API (`event`, `url`, `requestType`, `json`, `form`,
`body`, `query`, `headers`, `auth`, `responseTopic`, `errorResponseTopic`,
`responseTemplate`, `noDefaults`, `rejectUnauthorized`, `disabled`); `secret` is ours: the
key of the HMAC-SHA256 signature every request carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Method(StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


MAX_URL = 2048
MAX_TEMPLATE = 8192  # characters of one template (a body, a JSON template, a header value)
MAX_FIELDS = 32  # entries in headers, query or form
MAX_WEBHOOKS_PER_PRODUCT = 100
DEFAULT_RESPONSE_TOPIC = "hook-response/{{{PARTICLE_EVENT_NAME}}}"
DEFAULT_ERROR_TOPIC = "hook-error/{{{PARTICLE_EVENT_NAME}}}"
HOOK_PREFIX = "hook-"  # the cloud's own webhook events: they never trigger a webhook


@dataclass(frozen=True, slots=True)
class Auth:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """What the operator configures (everything but the ID, secret and bookkeeping)."""

    event: str  # prefix of the event names that trigger it
    url: str  # a template; its scheme and host are literal
    method: Method = Method.POST
    headers: dict[str, str] = field(default_factory=dict)  # values are templates
    query: dict[str, str] = field(default_factory=dict)  # values are templates
    json: Any = None  # an object whose strings are templates, or one template string of JSON
    form: dict[str, str] | None = None  # values are templates
    body: str | None = None  # a template, sent as is
    auth: Auth | None = None  # HTTP basic authentication
    response_topic: str = DEFAULT_RESPONSE_TOPIC
    error_topic: str = DEFAULT_ERROR_TOPIC
    response_template: str | None = None  # renders the response (its JSON fields) before it goes back
    no_defaults: bool = False  # leave out event, data, published_at, coreid
    reject_unauthorized: bool = True  # verify the target's TLS certificate
    disabled: bool = False
    name: str = ""


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    product_id: int
    spec: WebhookSpec
    secret: str  # HMAC-SHA256 key, hex
    created_at: float
    created_by: str

    def triggered_by(self, event_name: str) -> bool:
        return not self.spec.disabled and event_name.startswith(self.spec.event)


def spec_to_json(spec: WebhookSpec) -> dict[str, Any]:
    """The stored form, in Particle's field names (also the API's)."""
    out: dict[str, Any] = {
        "event": spec.event,
        "url": spec.url,
        "requestType": spec.method.value,
        "headers": spec.headers,
        "query": spec.query,
        "responseTopic": spec.response_topic,
        "errorResponseTopic": spec.error_topic,
        "noDefaults": spec.no_defaults,
        "rejectUnauthorized": spec.reject_unauthorized,
        "disabled": spec.disabled,
        "name": spec.name,
    }
    for key, value in (("json", spec.json), ("form", spec.form), ("body", spec.body),
                       ("responseTemplate", spec.response_template)):  # fmt: skip
        if value is not None:
            out[key] = value
    if spec.auth is not None:
        out["auth"] = {"username": spec.auth.username, "password": spec.auth.password}
    return out


def spec_from_json(data: dict[str, Any]) -> WebhookSpec:
    auth = data.get("auth")
    return WebhookSpec(
        event=data["event"],
        url=data["url"],
        method=Method(data.get("requestType", "POST")),
        headers=dict(data.get("headers") or {}),
        query=dict(data.get("query") or {}),
        json=data.get("json"),
        form=data.get("form"),
        body=data.get("body"),
        auth=None if auth is None else Auth(auth["username"], auth["password"]),
        response_topic=data.get("responseTopic", DEFAULT_RESPONSE_TOPIC),
        error_topic=data.get("errorResponseTopic", DEFAULT_ERROR_TOPIC),
        response_template=data.get("responseTemplate"),
        no_defaults=bool(data.get("noDefaults", False)),
        reject_unauthorized=bool(data.get("rejectUnauthorized", True)),
        disabled=bool(data.get("disabled", False)),
        name=str(data.get("name", "")),
    )
