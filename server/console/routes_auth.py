"""Log in and out of the console: the same users, passwords and login limiter as POST /oauth/token."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from ..api.deps import State
from ..api.errors import ApiError
from ..api.routes_tokens import password_holder
from ..logs import log_event
from ..ops.auth import hash_token, token_id
from ..store.records import UserRecord
from .render import page
from .session import ConsoleUser, check_csrf, check_origin, clear_session_cookie, open_session, set_session_cookie

log = logging.getLogger("fleetgate.console")
router = APIRouter(prefix="/console", include_in_schema=False)

HOME = "/console/"


def _safe_next(target: str | None) -> str:
    """Only a path of the console itself: never an open redirect to another site."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", None, next=_safe_next(next), username="")


@router.post("/login")
async def login(
    request: Request,
    state: State,
    username: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2048)] = HOME,
) -> Response:
    check_origin(request)
    target = _safe_next(next)

    def again(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        response = page(request, "login.html", None, status=status, next=target, username=username, error=message)
        response.headers.update(headers or {})
        return response

    if not username or not password:
        return again(400, "enter your username and password")
    try:
        holder = await password_holder(request, state, username, password, None)
    except ApiError as exc:
        return again(exc.status, str(exc.body.get("error_description", "login failed")), dict(exc.headers or {}))
    if not isinstance(holder, UserRecord):
        return again(403, "the console is for product teams: customers use the API")
    token = await open_session(state, holder)
    log_event(log, "console_login", holder=f"user:{holder.username}", id=token_id(hash_token(token)))
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token)
    return response


@router.post("/logout", dependencies=[Depends(check_csrf)])
async def logout(request: Request, state: State, principal: ConsoleUser) -> Response:
    await state.ops.revoke_token(principal.token.token_hash)
    response = RedirectResponse("/console/login", status_code=303)
    clear_session_cookie(response)
    return response
