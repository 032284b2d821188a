"""FastAPI dependencies: the server state, the caller (from a bearer token), product access.

Order of checks on product routes: a valid token (401), a user rather than a customer (403),
the token's scope (403), the product exists (404), the caller's role allows it (403).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, cast

import trio
from fastapi import Depends, Path, Request
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from ..context import ServerContext
from ..login_limits import LoginLimits
from ..logs import now
from ..ops.auth import ALL_SCOPES, hash_token, looks_like_token
from ..ops.operations import Operations
from ..rules.errors import Forbidden, NotFound
from ..rules.model import Role
from ..store import Store
from ..store.records import CustomerRecord, ProductRecord, TokenRecord, UserRecord
from .errors import insufficient_scope, invalid_token
from .permissions import SCOPE_OF, WHAT, Perm, role_allows

_PRODUCT_ID = re.compile(r"^[0-9]{1,10}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
SESSION_COOKIE = "fg_session"  # the web console's session: an access token of client SESSION_CLIENT
SESSION_CLIENT = "console"


@dataclass(slots=True)
class ApiState:
    ctx: ServerContext
    ops: Operations
    logins: LoginLimits
    # Password hashes cost tens of milliseconds of CPU each: a few threads at a time, never the event loop.
    hashing: trio.CapacityLimiter

    @property
    def store(self) -> Store:
        return self.ctx.store.sync


def get_state(request: Request) -> ApiState:
    return cast(ApiState, request.app.state.fleetgate)


State = Annotated[ApiState, Depends(get_state)]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, with which token."""

    token: TokenRecord
    user: UserRecord | None
    customer: CustomerRecord | None

    @property
    def username(self) -> str:
        holder = self.user or self.customer
        assert holder is not None
        return holder.username

    @property
    def actor(self) -> str:
        """How operations and the audit trail name the caller."""
        return f"{'user' if self.user else 'customer'}:{self.username}"

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.is_admin

    def has_scope(self, scope: str) -> bool:
        return ALL_SCOPES in self.token.scopes or scope in self.token.scopes

    def require_scope(self, scope: str) -> None:
        if not self.has_scope(scope):
            raise insufficient_scope(scope)

    def require_user(self) -> UserRecord:
        if self.user is None:
            raise Forbidden("customer tokens only reach /v1/user and /v1/access_tokens")
        return self.user

    def require_admin(self, scope: str) -> UserRecord:
        user = self.require_user()
        self.require_scope(scope)
        if not user.is_admin:
            raise Forbidden("only a server admin may do this")
        return user


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")
_query_token = APIKeyQuery(
    name="access_token", auto_error=False, description="the token as a query (or form) parameter"
)


async def _form_token(request: Request) -> str | None:
    if not request.headers.get("content-type", "").startswith(_FORMS):
        return None
    value = (await request.form()).get("access_token")  # parsed once; the route reuses it
    return value if isinstance(value, str) else None


def lookup_token(
    store: Store, token_hash: bytes
) -> tuple[TokenRecord | None, UserRecord | None, CustomerRecord | None]:
    token = store.get_token(token_hash)
    if token is None:
        return None, None, None
    user = store.get_user(token.user_id) if token.user_id is not None else None
    customer = store.get_customer(token.customer_id) if token.customer_id is not None else None
    return token, user, customer


async def _authenticate(
    request: Request, state: ApiState, bearer: HTTPAuthorizationCredentials | None, query: str | None
) -> Principal:
    text = bearer.credentials if bearer is not None else query
    if text is None and request.headers.get("authorization"):
        raise invalid_token("the Authorization header must be 'Bearer <token>'")
    if text is None:
        text = await _form_token(request)
    if text is None:
        raise invalid_token("no access token: send Authorization: Bearer <token>")
    return await principal_of(state, text)


async def principal_of(state: ApiState, text: str) -> Principal:
    """The holder of an access token, or 401 naming what is wrong with it."""
    text = text.strip()
    if not looks_like_token(text):
        raise invalid_token("the access token is malformed")
    token, user, customer = await state.ctx.store.read(lookup_token, state.store, hash_token(text))
    if token is None:
        raise invalid_token("the access token is unknown or revoked")
    if token.refresh:
        raise invalid_token("a refresh token is not an access token: exchange it at /oauth/token")
    if token.expires_at is not None and token.expires_at <= now():
        raise invalid_token("the access token has expired")
    if user is None and customer is None:
        raise invalid_token("the token's holder no longer exists")
    return Principal(token, user, customer)


async def session_principal(state: ApiState, cookie: str) -> Principal:
    """The user behind a console session cookie: a token the console issued, to a user."""
    principal = await principal_of(state, cookie)
    if principal.token.client != SESSION_CLIENT or principal.user is None:
        raise invalid_token("the session cookie does not hold a console session")
    return principal


async def authenticate(
    request: Request,
    state: State,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    query: Annotated[str | None, Depends(_query_token)],
) -> AsyncIterator[Principal]:
    try:
        yield await _authenticate(request, state, bearer, query)
    finally:
        await request.close()  # uploaded files spool to temporary files: close them, used or not


async def authenticate_stream(
    request: Request,
    state: State,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    query: Annotated[str | None, Depends(_query_token)],
) -> Principal:
    """For GET event streams only: a token as everywhere, or else the console's session cookie
    (a browser's EventSource cannot send headers). No write route takes the cookie: a cross-site
    form could carry it there."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if bearer is None and query is None and cookie and request.method in ("GET", "HEAD"):
        return await session_principal(state, cookie)
    return await _authenticate(request, state, bearer, query)


Caller = Annotated[Principal, Depends(authenticate)]
StreamPrincipal = Annotated[Principal, Depends(authenticate_stream)]


def product_key(text: str) -> int | str | None:
    """A product ID or slug from a path, or None when it cannot name a product. All digits is
    an ID (the store reads it so too), and IDs fit in 31 bits."""
    if text.isascii() and text.isdigit():
        return int(text) if _PRODUCT_ID.match(text) else None
    if _SLUG.match(text):
        return text
    return None


@dataclass(frozen=True, slots=True)
class ProductAccess:
    principal: Principal
    product: ProductRecord
    role: Role | None

    @property
    def actor(self) -> str:
        return self.principal.actor

    def allows(self, perm: Perm) -> bool:
        return self.principal.has_scope(SCOPE_OF[perm]) and (self.principal.is_admin or role_allows(self.role, perm))

    def require(self, perm: Perm) -> None:
        self.principal.require_scope(SCOPE_OF[perm])
        if self.principal.is_admin or role_allows(self.role, perm):
            return
        if self.role is None:
            raise Forbidden(f"you are not on the team of product {self.product.id}")
        raise Forbidden(f"the {self.role.value} role may not {WHAT[perm]} (product {self.product.id})")


def _product_and_role(store: Store, key: int | str, user_id: int) -> tuple[ProductRecord | None, Role | None]:
    product = store.get_product(key)
    return product, (store.role_of(product.id, user_id) if product else None)


async def load_product_access(state: ApiState, principal: Principal, text: str, perm: Perm) -> ProductAccess:
    user = principal.require_user()
    principal.require_scope(SCOPE_OF[perm])
    key = product_key(text)
    product, role = (
        (None, None) if key is None else await state.ctx.store.read(_product_and_role, state.store, key, user.id)
    )
    if product is None:
        raise NotFound(f"product {text[:64]!r} not found")
    access = ProductAccess(principal, product, role)
    access.require(perm)
    return access


ProductPath = Annotated[str, Path(description="product ID or slug")]


def product_access(perm: Perm) -> Callable[..., Awaitable[ProductAccess]]:
    """A dependency that admits callers holding `perm` (role and scope) on the path's product."""

    async def dependency(product: ProductPath, state: State, principal: Caller) -> ProductAccess:
        return await load_product_access(state, principal, product, perm)

    return dependency


def stream_access(perm: Perm) -> Callable[..., Awaitable[ProductAccess]]:
    """product_access for GET event streams, which also take the console's session cookie."""

    async def dependency(product: ProductPath, state: State, principal: StreamPrincipal) -> ProductAccess:
        return await load_product_access(state, principal, product, perm)

    return dependency


def user_with_scope(scope: str, *, admin: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting users (not customers) whose token has `scope`; server admins only
    with admin=True. As a dependency it runs before the body is validated: 403 before 400."""

    async def dependency(principal: Caller) -> Principal:
        if admin:
            principal.require_admin(scope)
        else:
            principal.require_user()
            principal.require_scope(scope)
        return principal

    return dependency


def any_with_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting users and customers whose token has `scope` (the route then
    limits a customer to what the customer owns)."""

    async def dependency(principal: Caller) -> Principal:
        principal.require_scope(scope)
        return principal

    return dependency


def stream_with_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """any_with_scope for GET event streams, which also take the console's session cookie."""

    async def dependency(principal: StreamPrincipal) -> Principal:
        principal.require_scope(scope)
        return principal

    return dependency
