"""Bodies that come as JSON or as a form, as Particle's API takes them.

Particle's own clients send form-encoded bodies on some endpoints (particle-api-js's
createCustomer, particle-cli's `publish` and user creation). Such a route reads its body with
`json_or_form(Model)` instead of declaring it: JSON is validated as before (strict types);
a form's text values are turned into the model's booleans and integers first, the client
credentials Particle's forms carry along are dropped, and Particle's field names may be
renamed to ours. Unknown fields are refused either way (400 naming them).
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from ..rules.errors import Invalid
from .errors import describe_validation

M = TypeVar("M", bound=BaseModel)

# Sent along in Particle's forms; the token is read by authentication, the client is not checked.
RIDE_ALONG = frozenset({"access_token", "client_id", "client_secret", "grant_type"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no", ""}
# ASCII digits only: str.isdigit() also takes "²", which int() refuses.
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(_FORMS)


def _leaf_types(annotation: Any) -> set[Any]:
    """The plain types an annotation admits (Annotated, Optional and unions unwrapped)."""
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return {leaf for arg in get_args(annotation) for leaf in _leaf_types(arg)}
    if origin is not None and hasattr(annotation, "__metadata__"):  # Annotated[T, ...]
        return _leaf_types(get_args(annotation)[0])
    return {annotation}


def _typed(model: type[BaseModel], name: str, text: str) -> object:
    """A form's text as the field's type when it is a boolean or an integer; otherwise the text."""
    field = model.model_fields.get(name)
    if field is None:
        return text
    leaves = _leaf_types(field.annotation)
    lowered = text.strip().lower()
    if bool in leaves:
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    if int in leaves and _INTEGER.fullmatch(lowered):
        return int(lowered)
    return text


def form_values(form: FormData, model: type[BaseModel], renames: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, value in form.multi_items():
        if key in RIDE_ALONG:
            continue
        name = renames.get(key, key)
        if not isinstance(value, str):
            raise Invalid(f"{key[:64]} must be a text field, not a file", key[:64])
        if name in values:
            also = f" (or with {name})" if name != key else ""
            raise Invalid(f"{key[:64]!r} is given twice{also}", key[:64])
        values[name] = _typed(model, name, value)
    return values


def _json_object(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise Invalid("the body is neither JSON nor a form", "body") from None


def _renamed(value: object, renames: Mapping[str, str]) -> object:
    """Particle's field names as ours; a body that gives both is refused."""
    if not isinstance(value, dict):
        return value
    out: dict[str, object] = {}
    for key, item in value.items():
        name = renames.get(key, key)
        if name in out:
            raise Invalid(f"{key[:64]} and {name} name the same field: send one", key[:64])
        out[name] = item
    return out


def _validated(model: type[M], parse: Callable[[], M]) -> M:
    try:
        return parse()
    except ValidationError as exc:
        message, field = describe_validation(exc.errors())
        raise Invalid(message, field) from None


def json_or_form(model: type[M], renames: Mapping[str, str] | None = None) -> Callable[[Request], Awaitable[M]]:
    """A dependency that reads the route's body as JSON or as a form (see the module's doc)."""
    names = dict(renames or {})

    async def read(request: Request) -> M:
        if is_form(request):
            values = form_values(await request.form(), model, names)
            return _validated(model, lambda: model.model_validate(values))
        raw = await request.body()
        if not raw.strip():
            raise Invalid("a JSON or form-encoded body is required", "body")
        if names:
            return _validated(model, lambda: model.model_validate(_renamed(_json_object(raw), names)))
        return _validated(model, lambda: model.model_validate_json(raw))

    return read


def openapi_body(model: type[BaseModel], description: str = "") -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body with json_or_form (the schema must hold no $refs)."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "description": description or "JSON, or the same fields form-encoded",
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    }
