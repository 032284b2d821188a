"""/openapi.json as the API really answers: 400 (not FastAPI's 422) for malformed requests,
and the 401/403/404 shapes on the routes that can return them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .models import AuthErrorOut, RequestErrorOut

_REQUEST_REF = {"$ref": "#/components/schemas/RequestErrorOut"}
_AUTH_REF = {"$ref": "#/components/schemas/AuthErrorOut"}
_REQUEST_ERROR = {"application/json": {"schema": _REQUEST_REF}}
_AUTH_ERROR = {"application/json": {"schema": _AUTH_REF}}
_COMMON: dict[str, dict[str, Any]] = {
    "400": {"description": "Malformed request: `field` names the problem", "content": _REQUEST_ERROR},
    "409": {"description": "Conflicts with the current state", "content": _REQUEST_ERROR},
    "413": {"description": "Body too large", "content": _REQUEST_ERROR},
}
_SECURED: dict[str, dict[str, Any]] = {
    "401": {"description": "Missing, malformed, unknown, revoked or expired token", "content": _AUTH_ERROR},
    "403": {
        "description": "Not allowed: a customer token, not on the team, role or token scope too narrow",
        "content": {"application/json": {"schema": {"anyOf": [_REQUEST_REF, _AUTH_REF]}}},
    },
}


def build_openapi(app: FastAPI, description: str) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=description, routes=app.routes)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for code, response in _COMMON.items():
                responses.setdefault(code, response)
            if operation.get("security"):
                for code, response in _SECURED.items():
                    responses.setdefault(code, response)
            if "{" in path:
                responses.setdefault("404", {"description": "Unknown product or device", "content": _REQUEST_ERROR})
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["RequestErrorOut"] = RequestErrorOut.model_json_schema()
    schemas["AuthErrorOut"] = AuthErrorOut.model_json_schema()
    app.openapi_schema = schema
    return schema
