"""POST /oauth/token (password and refresh_token grants) and the caller's access tokens."""

from __future__ import annotations

import functools
import logging
import math
import re
import secrets
from typing import Annotated

import trio
from fastapi import APIRouter, Form, Path, Request

from ..logs import log_event, now
from ..ops.auth import ALL_SCOPES, hash_token, looks_like_token, new_token, parse_scopes, token_id
from ..rules.errors import Invalid, NotFound
from ..rules.passwords import hash_password, verify_password
from ..store import Store
from ..store.records import CustomerRecord, TokenRecord, UserRecord
from .deps import ApiState, Caller, State, lookup_token, product_key
from .errors import ApiError, oauth_error
from .models import AccessTokenOut, AccessTokensOut, AuthErrorOut, OkOut, RequestErrorOut, TokenOut
from .views import iso, iso_or_none

log = logging.getLogger("fleetgate.api")
router = APIRouter()

DEFAULT_EXPIRES_IN = 90 * 86400  # Particle's default token lifetime
MAX_EXPIRES_IN = 10 * 365 * 86400
REFRESH_LIFETIME = 365 * 86400
DEFAULT_CLIENT = "fleetgate"
_TOKEN_ID = re.compile(r"^[0-9a-f]{12}$")

_OAUTH_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": AuthErrorOut, "description": "invalid_request, invalid_grant, unsupported_grant_type"},
    429: {"model": AuthErrorOut, "description": "too many failed logins; see Retry-After"},
}


@functools.cache
def _decoy_hash() -> str:
    """Checked when the username is unknown, so a miss costs as much as a wrong password."""
    return hash_password(secrets.token_hex(16))


def _find_holders(store: Store, username: str, product: str | None) -> list[UserRecord | CustomerRecord]:
    """Who may hold this name: the user, else customers by that name (within `product` if given)."""
    if product is not None:
        key = product_key(product)
        found = store.get_product(key) if key is not None else None
        customer = store.get_customer_by_name(found.id, username) if found else None
        return [customer] if customer else []
    user = store.get_user_by_name(username)
    if user is not None:
        return [user]
    return list(store.find_customers(username))


async def _issue(
    state: ApiState,
    holder: UserRecord | CustomerRecord,
    scopes: frozenset[str],
    expires_in: int,
    client: str,
    replacing: bytes | None = None,
) -> TokenOut:
    access, refresh, at = new_token(), new_token(), now()
    user_id = holder.id if isinstance(holder, UserRecord) else None
    customer_id = holder.id if isinstance(holder, CustomerRecord) else None
    expires_at = at + expires_in if expires_in else None
    grant = secrets.token_hex(8)
    records = [
        TokenRecord(hash_token(access), user_id, customer_id, scopes, client, at, expires_at, False, grant),
        TokenRecord(hash_token(refresh), user_id, customer_id, scopes, client, at, at + REFRESH_LIFETIME, True, grant),
    ]
    await state.ops.store_tokens(records, replacing=replacing)
    kind = "user" if user_id is not None else "customer"
    log_event(
        log, "token_issued", holder=f"{kind}:{holder.username}", client=client, id=token_id(records[0].token_hash)
    )
    return TokenOut(access_token=access, expires_in=expires_in, refresh_token=refresh, scope=" ".join(sorted(scopes)))


async def password_holder(
    request: Request, state: ApiState, username: str | None, password: str | None, product: str | None
) -> UserRecord | CustomerRecord:
    if not username or password is None:
        raise oauth_error("invalid_request", "the password grant needs username and password")
    ip = request.client.host if request.client else "unknown"
    wait = await state.logins.attempt(username, ip)
    if wait is not None:
        raise ApiError(
            429,
            {"error": "too_many_attempts", "error_description": "too many failed logins; try again later"},
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )
    candidates = await state.ctx.store.read(_find_holders, state.store, username, product)
    # Every candidate's password is checked (a decoy's when there is none), so neither the answer
    # nor its timing tells whether, or in how many products, the name exists.
    if not candidates:
        decoy = await trio.to_thread.run_sync(_decoy_hash, limiter=state.hashing)
        await trio.to_thread.run_sync(verify_password, password, decoy, limiter=state.hashing)
    matches: list[UserRecord | CustomerRecord] = []
    for candidate in candidates:
        if await trio.to_thread.run_sync(verify_password, password, candidate.password_hash, limiter=state.hashing):
            matches.append(candidate)
    if not matches:
        raise oauth_error("invalid_grant", "wrong username or password")
    if len(matches) > 1:  # only someone holding the password learns the name is in several products
        problem = "this customer exists in several products: pass `product` (ID or slug)"
        raise ApiError(400, {"error": "invalid_request", "error_description": problem, "field": "product"})
    holder = matches[0]
    await state.logins.succeeded(username, ip)
    return holder


async def _refresh_grant(
    state: ApiState, refresh_token: str | None, requested: frozenset[str] | None
) -> tuple[UserRecord | CustomerRecord, frozenset[str], bytes]:
    if not refresh_token:
        raise oauth_error("invalid_request", "the refresh_token grant needs refresh_token")
    refresh_token = refresh_token.strip()
    old = hash_token(refresh_token)
    token, user, customer = (
        await state.ctx.store.read(lookup_token, state.store, old)
        if looks_like_token(refresh_token)
        else (None, None, None)
    )
    holder = user or customer
    expired = token is not None and token.expires_at is not None and token.expires_at <= now()
    if token is None or not token.refresh or expired or holder is None:
        raise oauth_error("invalid_grant", "the refresh token is unknown, used or expired")
    scopes = token.scopes
    if requested is not None:
        if ALL_SCOPES not in scopes and (ALL_SCOPES in requested or not requested <= scopes):
            raise oauth_error("invalid_scope", f"the refresh token only grants: {' '.join(sorted(scopes))}")
        scopes = requested
    return holder, scopes, old


@router.post(
    "/oauth/token",
    response_model=TokenOut,
    tags=["tokens"],
    summary="Log in (password grant) or exchange a refresh token",
    responses=_OAUTH_ERRORS,
)
async def issue_token(
    request: Request,
    state: State,
    grant_type: Annotated[str, Form(max_length=64, description="password or refresh_token")],
    username: Annotated[str | None, Form(max_length=254)] = None,
    password: Annotated[str | None, Form(max_length=1024)] = None,
    refresh_token: Annotated[str | None, Form(max_length=128)] = None,
    expires_in: Annotated[int | None, Form(ge=0, le=MAX_EXPIRES_IN, description="seconds; 0: never")] = None,
    scope: Annotated[str | None, Form(max_length=1024, description="space-separated scopes")] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=1024, description="accepted and ignored")] = None,
    product: Annotated[str | None, Form(max_length=128, description="a customer's product (ID or slug)")] = None,
) -> TokenOut:
    lifetime = DEFAULT_EXPIRES_IN if expires_in is None else expires_in
    client = client_id or DEFAULT_CLIENT
    try:
        requested = parse_scopes(scope) if scope else None
    except Invalid as exc:
        raise ApiError(400, {"error": "invalid_scope", "error_description": exc.message, "field": "scope"}) from None
    if grant_type == "password":
        scopes = requested or frozenset({ALL_SCOPES})
        holder = await password_holder(request, state, username, password, product)
        if isinstance(holder, CustomerRecord):
            scopes = frozenset({ALL_SCOPES})  # a customer's reach is fixed by being a customer
        return await _issue(state, holder, scopes, lifetime, client)
    if grant_type == "refresh_token":
        holder, scopes, old = await _refresh_grant(state, refresh_token, requested)
        try:
            return await _issue(state, holder, scopes, lifetime, client, replacing=old)
        except Invalid:  # raced with another exchange of the same refresh token
            raise oauth_error("invalid_grant", "the refresh token is unknown, used or expired") from None
    raise oauth_error("unsupported_grant_type", "grant_type must be password or refresh_token")


def _token_out(token: TokenRecord) -> AccessTokenOut:
    return AccessTokenOut(
        id=token_id(token.token_hash),
        client=token.client,
        created_at=iso(token.created_at),
        expires_at=iso_or_none(token.expires_at),
        scopes=sorted(token.scopes),
    )


def _live(token: TokenRecord, at: float) -> bool:
    return token.expires_at is None or token.expires_at > at


@router.get("/v1/access_tokens", response_model=AccessTokensOut, tags=["tokens"], summary="The caller's tokens")
async def list_tokens(caller: Caller, state: State) -> AccessTokensOut:
    if caller.user is None:  # the store lists tokens per user; a customer sees the one in hand
        return AccessTokensOut(tokens=[_token_out(caller.token)])
    tokens = await state.ctx.store.read(state.store.list_tokens, caller.user.id)
    at = now()
    return AccessTokensOut(tokens=[_token_out(t) for t in tokens if _live(t, at)])


@router.delete("/v1/access_tokens/current", response_model=OkOut, tags=["tokens"], summary="Revoke this token")
async def revoke_current(caller: Caller, state: State) -> OkOut:
    await state.ops.revoke_token(caller.token.token_hash)
    return OkOut()


@router.delete(
    "/v1/access_tokens/{token}",
    response_model=OkOut,
    tags=["tokens"],
    summary="Revoke one of the caller's tokens",
    responses={404: {"model": RequestErrorOut}},
)
async def revoke(
    token: Annotated[str, Path(max_length=128, description="the token itself, or its 12-character id")],
    caller: Caller,
    state: State,
) -> OkOut:
    target: bytes | None = None
    if looks_like_token(token):
        target = hash_token(token)
    elif _TOKEN_ID.match(token) and caller.user is not None:
        mine = await state.ctx.store.read(state.store.list_tokens, caller.user.id)
        target = next((t.token_hash for t in mine if token_id(t.token_hash) == token), None)
    record = await state.ctx.store.read(state.store.get_token, target) if target is not None else None
    if record is None or not _owned_by(record, caller.user, caller.customer, caller.is_admin):
        raise NotFound("no such token among yours", "token")
    await state.ops.revoke_token(record.token_hash)
    return OkOut()


def _owned_by(token: TokenRecord, user: UserRecord | None, customer: CustomerRecord | None, admin: bool) -> bool:
    if admin:
        return True
    if user is not None:
        return token.user_id == user.id
    return customer is not None and token.customer_id == customer.id
