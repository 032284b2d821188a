"""Every failure an API caller can cause becomes a 4xx JSON body that names the problem.

Two shapes, as Particle and OAuth 2.0 use them:
  * request problems:        {"error": "<what is wrong>", "field": "<which field>" | null}
  * credential problems:     {"error": "<oauth code>", "error_description": "<what is wrong>"}
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from ..rules.errors import Conflict, Forbidden, Invalid, NotFound, OperationError
from ..store import StoreClosed
from ..store.database import DatabaseUnavailable

log = logging.getLogger("fleetgate.api")

_LOCATIONS = ("body", "query", "path", "header", "form")
OAUTH_TOKEN_PATH = "/oauth/token"


# Each domain error's HTTP status: the one place the domain meets HTTP.
OPERATION_STATUS: dict[type[OperationError], int] = {Invalid: 400, NotFound: 404, Conflict: 409, Forbidden: 403}


def operation_status(exc: OperationError) -> int:
    return next((s for kind, s in OPERATION_STATUS.items() if isinstance(exc, kind)), 400)


class ApiError(Exception):
    """An error with a ready body (auth and rate-limit failures)."""

    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(body.get("error_description") or body.get("error"))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def invalid_token(description: str) -> ApiError:
    return ApiError(
        401,
        {"error": "invalid_token", "error_description": description},
        {"WWW-Authenticate": 'Bearer realm="fleetgate", error="invalid_token"'},
    )


def insufficient_scope(scope: str) -> ApiError:
    return ApiError(
        403,
        {"error": "insufficient_scope", "error_description": f"this token lacks the {scope} scope"},
        {"WWW-Authenticate": f'Bearer realm="fleetgate", error="insufficient_scope", scope="{scope}"'},
    )


def oauth_error(code: str, description: str, status: int = 400) -> ApiError:
    return ApiError(status, {"error": code, "error_description": description})


def request_error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def describe_validation(errors: Sequence[Any]) -> tuple[str, str]:
    """(message, field) for the first of pydantic's errors, without echoing the input."""
    if not errors:
        return "the request is malformed", "body"
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ())]
    kind = first.get("type", "")
    if loc and loc[0] in _LOCATIONS:
        where, rest = loc[0], loc[1:]
    else:
        where, rest = "body", loc
    if kind == "json_invalid":
        return "the body is not valid JSON", "body"
    field = ".".join(rest) or where
    if kind == "missing":
        return (f"{field} is required" if rest else "a JSON body is required"), field
    if kind == "extra_forbidden":
        return f"{field} is not a field this request takes", field
    return f"{field}: {first.get('msg', 'invalid value')}", field


def allowed_methods(request: Request) -> str:
    """Every method the API takes on this path, from its OpenAPI document (Starlette's 405 names
    only the methods of the first route that matched the path)."""
    app: FastAPI = request.app
    methods = {"GET", "HEAD"} if request.url.path == app.openapi_url else set()
    for template, operations in app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def database_away(exc: BaseException) -> bool:
    """The store could not reach its database (a cluster node cut off from PostgreSQL): the store's
    own error, or the driver's for a lost connection (psycopg is imported only by such nodes)."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    async def operation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OperationError)
        return request_error(operation_status(exc), exc.message, exc.field)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, field = describe_validation(exc.errors())
        if request.url.path == OAUTH_TOKEN_PATH:  # OAuth 2.0 clients read this shape (RFC 6749 5.2)
            body = {"error": "invalid_request", "error_description": message, "field": field}
            return JSONResponse(body, status_code=400)
        return request_error(400, message, field)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        response = request_error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = allowed_methods(request)
        return response

    async def store_closed(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "the server is shutting down", "field": None}, status_code=503)

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        if database_away(exc):  # not a fault of the request or the server's code: try again later
            log.warning("api request failed, the database cannot be reached: %s %s", request.method, request.url.path)
            body = {"error": "the database cannot be reached; try again later", "field": None}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        # Starlette re-raises after answering, so the traceback reaches the server log too.
        log.error("api request crashed: %s %s: %r", request.method, request.url.path, exc)
        return JSONResponse({"error": "internal error", "field": None}, status_code=500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(OperationError, operation_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(StoreClosed, store_closed)
    app.add_exception_handler(Exception, crashed)
