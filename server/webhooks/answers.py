"""What a webhook's outcome tells the device that published the event: a 2xx answer comes back as
`<responseTopic>/<i>` events of at most 512 bytes each, a final failure as `<errorResponseTopic>/0`.
Both are stored events addressed to that device alone (`to_device`)."""

from __future__ import annotations

import json
from typing import Any

from protocol import limits

from ..events.feeds import API_SOURCE
from ..events.log import EventLog
from ..logs import now
from ..rules.webhook_model import Webhook
from ..store.records import EventRecord
from . import templates

CHUNK = 512  # bytes per hook-response event (Particle's)
RESPONSE_TTL = 60


async def publish_response(event_log: EventLog, hook: Webhook, event: EventRecord, body: bytes) -> None:
    if hook.spec.response_template is not None:
        body = _render_response(hook.spec.response_template, body).encode()
    await _publish_to_device(event_log, hook, event, hook.spec.response_topic, body)


async def publish_error(event_log: EventLog, hook: Webhook, event: EventRecord, error: str) -> None:
    await _publish_to_device(event_log, hook, event, hook.spec.error_topic, error.encode()[:CHUNK])


async def _publish_to_device(event_log: EventLog, hook: Webhook, event: EventRecord, topic: str, body: bytes) -> None:
    if event.device_id == API_SOURCE:
        return  # published through the API: there is no device to answer
    context = templates.variables(event, hook.product_id)
    try:
        name = templates.render(topic, context)
    except templates.TemplateError:
        return  # checked when the webhook was saved
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)] or [b""]
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
