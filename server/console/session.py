"""The console's session: a cookie holding an access token of client "console", a CSRF token
derived from it, and the Origin check every console POST passes.

The session is a row in the token table like any API token (listed by GET /v1/access_tokens,
revoked by logout), so the principal, roles and scopes come from the same lookup as the API's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from ..api.deps import SESSION_CLIENT, SESSION_COOKIE, ApiState, Principal, State, session_principal
from ..api.errors import ApiError
from ..logs import now
from ..ops.auth import ALL_SCOPES, hash_token, new_token
from ..store.records import TokenRecord, UserRecord

SESSION_LIFETIME = 12 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(Exception):
    """No live console session: pages redirect to the login form, POSTs are refused."""


class Refused(Exception):
    """A console request refused before it acts (CSRF, Origin): answered 403 with the reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def open_session(state: ApiState, user: UserRecord) -> str:
    """A new console session for `user`: a token row (client "console", 12 hours)."""
    token, at = new_token(), now()
    record = TokenRecord(
        hash_token(token), user.id, None, frozenset({ALL_SCOPES}), SESSION_CLIENT, at, at + SESSION_LIFETIME, False,
        secrets.token_hex(8),
    )  # fmt: skip
    await state.ops.store_tokens([record])
    return token


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    # SameSite=Strict explicitly: Starlette's default is Lax.
    response.set_cookie(
        SESSION_COOKIE, token, max_age=SESSION_LIFETIME, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def csrf_token(session: str) -> str:
    """The synchronizer token of a session: only a page served to the session's holder knows it
    (the cookie is HttpOnly), and it holds in every node of a cluster."""
    return hmac.new(session.encode(), b"fleetgate console csrf", hashlib.sha256).hexdigest()


async def console_principal(request: Request, state: State) -> Principal:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise LoginRequired
    try:
        return await session_principal(state, cookie)
    except ApiError:
        raise LoginRequired from None


ConsoleUser = Annotated[Principal, Depends(console_principal)]


def check_origin(request: Request) -> None:
    """A state-changing request must come from our own pages: Origin names this server, or (a
    browser that sends no Origin) Sec-Fetch-Site says same-origin. Neither: refused."""
    expected = f"{request.url.scheme}://{request.url.netloc}"
    origin = request.headers.get("origin")
    if origin is not None:
        if origin != expected:
            raise Refused(f"cross-origin request refused (Origin {origin[:100]!r})")
        return
    if request.headers.get("sec-fetch-site") != "same-origin":
        raise Refused("request refused: no Origin header (send the form from the console's own pages)")


async def check_csrf(request: Request) -> None:
    """A console POST carries the session's CSRF token (form field or header) and passes the Origin check."""
    check_origin(request)
    session = request.cookies.get(SESSION_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not session or not sent or not hmac.compare_digest(sent, csrf_token(session)):
        raise Refused("the form's CSRF token is missing or wrong: reload the page and try again")


CsrfChecked = Depends(check_csrf)
