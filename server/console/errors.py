"""The API's errors, answered as pages on console paths: the same checks raise them (one rule,
two front ends), only the shape of the answer differs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from ..api.errors import ApiError, describe_validation, operation_status
from ..rules.errors import OperationError
from .headers import is_console_path
from .render import page
from .session import LoginRequired, Refused

Handler = Callable[[Request, Exception], Awaitable[Response]]
ApiHandler = Callable[[Request, Exception], Response | Awaitable[Response]]


def _status_and_message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, OperationError):
        return operation_status(exc), exc.message
    if isinstance(exc, ApiError):
        body = exc.body
        return exc.status, str(body.get("error_description") or body.get("error") or "refused")
    if isinstance(exc, RequestValidationError):
        return 400, describe_validation(exc.errors())[0]
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    return 500, "internal error"


def _error_page(request: Request, status: int, message: str) -> Response:
    return page(request, "error.html", None, status=status, status_code=status, message=message)


async def login_required(request: Request, exc: Exception) -> Response:
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)
    return _error_page(request, 403, "your console session has ended: log in again")


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return _error_page(request, 403, exc.message)


def _console_or(api_handler: ApiHandler) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        if not is_console_path(request.url.path):
            answer = api_handler(request, exc)
            return answer if isinstance(answer, Response) else await answer
        status, message = _status_and_message(exc)
        return _error_page(request, status, message)

    return handler


def install_console_errors(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Refused, refused)
    for kind in (ApiError, OperationError, RequestValidationError, HTTPException):
        api_handler = app.exception_handlers[kind]
        app.add_exception_handler(kind, _console_or(api_handler))
