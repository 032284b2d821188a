"""Mustache templates in webhooks, with Particle's variables.

Rendering uses combustache (a spec-compliant Mustache implementation) with no partials and
no lambdas: event data comes from devices, so a template may read it but never run it.
Each place a value lands has its own escaping: a URL gets percent-encoding, a JSON template
string gets JSON string escaping, headers and bodies get none ({{x}} and {{{x}}} are then the
same), form and query values are encoded when the request is built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import combustache

from ..logs import iso
from ..store.records import EventRecord

Escape = Callable[[str], str]


class TemplateError(ValueError):
    """A template does not parse; the message says where."""


def compile_template(source: str) -> combustache.Template:
    try:
        return combustache.Template(source)
    except combustache.CombustacheError as exc:
        raise TemplateError(str(exc)) from exc


def check(source: str) -> None:
    compile_template(source)


def _raw(text: str) -> str:
    return text


def _json_string(text: str) -> str:
    return json.dumps(text)[1:-1]


def _url(text: str) -> str:
    return quote(text, safe="")


RAW: Escape = _raw
JSON_STRING: Escape = _json_string
URL: Escape = _url


def render(source: str, context: dict[str, Any], escape: Escape = RAW) -> str:
    rendered: str = compile_template(source).render(context, {}, escape=escape)
    return rendered


def variables(event: EventRecord, product_id: int) -> dict[str, Any]:
    """Particle's webhook variables for one event. When the data is a JSON object, its fields
    are variables too (Particle's custom template variables); ours win a name clash."""
    value = event.data.decode("utf-8", errors="replace")
    context: dict[str, Any] = {}
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        context.update(parsed)
    published = iso(event.published_at)
    ours = {
        "PARTICLE_DEVICE_ID": event.device_id,
        "PARTICLE_EVENT_NAME": event.name,
        "PARTICLE_EVENT_VALUE": value,
        "PARTICLE_PUBLISHED_AT": published,
        "PRODUCT_ID": str(product_id),
        "FLEETGATE_EVENT_ID": str(event.id),
    }
    context.update(ours)
    # The SPARK_ names are Particle's older spellings, still accepted there.
    context.update(
        SPARK_CORE_ID=event.device_id, SPARK_EVENT_NAME=event.name, SPARK_EVENT_VALUE=value,
        SPARK_PUBLISHED_AT=published,
    )  # fmt: skip
    return context
