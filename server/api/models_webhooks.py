"""Request and response bodies of the webhook endpoints, in Particle's field names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from protocol import limits

from ..rules.webhook_model import MAX_FIELDS, MAX_TEMPLATE, MAX_URL

# What the schema promises is accepted: http(s) to a named host (check_spec refuses private addresses,
# credentials and templated hosts, so the schema names a host by a dotted name ending in letters).
PUBLIC_URL = r"^https?://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(/[!-~]*)?$"

Template = Annotated[StrictStr, Field(max_length=MAX_TEMPLATE)]
Fields = Annotated[dict[Annotated[StrictStr, Field(min_length=1, max_length=256)], Template],
                   Field(max_length=MAX_FIELDS)]  # fmt: skip


class AuthIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[StrictStr, Field(max_length=256)]
    password: Annotated[StrictStr, Field(max_length=1024)]


class WebhookIn(BaseModel):
    """Particle's webhook fields. Strings are Mustache templates over Particle's variables
    (PARTICLE_DEVICE_ID, PARTICLE_EVENT_NAME, PARTICLE_EVENT_VALUE, PARTICLE_PUBLISHED_AT,
    PRODUCT_ID, and the fields of JSON event data)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    event: Annotated[StrictStr, Field(min_length=1, max_length=limits.MAX_EVENT_NAME,
                                      description="event name prefix that triggers it")]  # fmt: skip
    url: Annotated[StrictStr, Field(min_length=1, max_length=MAX_URL, json_schema_extra={"pattern": PUBLIC_URL})]
    requestType: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: Fields = {}
    query: Fields = {}
    json_template: Any = Field(None, alias="json", description="an object whose strings are templates, or a template")
    form: Fields | None = None
    body: Template | None = None
    auth: AuthIn | None = None
    responseTopic: Template | None = None
    errorResponseTopic: Template | None = None
    responseTemplate: Template | None = None
    noDefaults: StrictBool = False
    rejectUnauthorized: StrictBool = True
    disabled: StrictBool = False
    name: Annotated[StrictStr, Field(max_length=256)] = ""


class AttemptOut(BaseModel):
    event_id: int
    at: str
    attempt: int
    status: int | None
    duration_ms: float
    error: str


class DeliveryStatsOut(BaseModel):
    triggered: int
    sent: int
    succeeded: int
    retried: int
    failed: int
    refused: int
    dropped: int = Field(description="never sent: the webhook was disabled, or the event no longer stored")
    pending: int = Field(0, description="waiting for their first try or a retry (stored: they survive restarts)")


class WebhookOut(BaseModel):
    id: int
    product_id: int
    created_at: str
    created_by: str
    config: dict[str, Any] = Field(description="the webhook as configured, in Particle's field names")
    counters: DeliveryStatsOut


class WebhookCreatedOut(WebhookOut):
    ok: bool = True
    secret: str = Field(description="HMAC-SHA256 key of the X-Fleetgate-Signature header; shown only here")


class WebhooksOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    event_id: int
    state: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_status: int | None
    error: str = Field(description="why it failed; empty otherwise")
    created_at: str
    updated_at: str


class DeliveriesOut(BaseModel):
    counters: DeliveryStatsOut
    successes: list[AttemptOut] = Field(description="the latest successful requests, newest last")
    errors: list[AttemptOut] = Field(description="the latest failed requests, newest last")
    failed_deliveries: list[DeliveryOut] = Field(
        [], description="the latest deliveries given up (retries spent, final answer, refused), newest last"
    )
