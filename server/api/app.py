"""The ASGI application: routers, error handlers and the state every route reaches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from fastapi import FastAPI

from ..context import ServerContext
from ..firmware.image import MAX_FIRMWARE_SIZE
from ..login_limits import LoginLimiter, LoginLimits
from ..ops.operations import Operations
from . import (
    routes_claims,
    routes_device_hub,
    routes_devices,
    routes_event_history,
    routes_events,
    routes_firmware,
    routes_groups,
    routes_health,
    routes_owners,
    routes_products,
    routes_provisioning,
    routes_rollouts,
    routes_team,
    routes_tokens,
    routes_user_events,
    routes_user_webhooks,
    routes_users,
    routes_webhooks,
)
from .deps import ApiState
from .errors import install_error_handlers
from .middleware import BodyLimit
from .openapi import build_openapi

# The largest firmware binary plus its form fields; an import of 10,000 devices or keys is under 2 MiB.
MAX_BODY = MAX_FIRMWARE_SIZE + 1024 * 1024
PASSWORD_THREADS = 4  # concurrent password hashes (each ~16 MiB of memory for scrypt)

DESCRIPTION = """Fleetgate's operator API, shaped after Particle's Cloud API.
Authenticate with `Authorization: Bearer <token>` (or `access_token` as a query or form
parameter); get a token from `POST /oauth/token`. See docs/API.md."""


def create_app(ctx: ServerContext, *, logins: LoginLimits | None = None) -> FastAPI:
    limits = logins or _login_limits(ctx)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await limits.aclose()  # a cluster node's own database connection for them

    app = FastAPI(
        title="Fleetgate API",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # no third-party JavaScript from a device cloud: /openapi.json is the contract
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.fleetgate = ApiState(
        ctx=ctx,
        ops=Operations(ctx),
        logins=limits,
        hashing=trio.CapacityLimiter(PASSWORD_THREADS),
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=min(MAX_BODY, ctx.config.max_firmware_size + 1024 * 1024))
    for module in (
        routes_health,
        routes_tokens,
        routes_users,
        routes_products,
        routes_device_hub,
        routes_devices,
        routes_user_events,  # before routes_events and routes_owners: "events" is not a device ID
        routes_events,
        routes_event_history,
        routes_owners,
        routes_team,
        routes_provisioning,
        routes_firmware,
        routes_groups,
        routes_rollouts,
        routes_claims,
        routes_webhooks,
        routes_user_webhooks,
    ):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        return build_openapi(app, DESCRIPTION)

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _login_limits(ctx: ServerContext) -> LoginLimits:
    """Failed-login limits: in memory on one node; in the database the nodes of a cluster share,
    so that N nodes do not allow N times the attempts."""
    dsn = getattr(ctx.store.sync, "dsn", None) if ctx.node_id is not None else None
    if dsn is None:
        return LoginLimiter()
    from ..cluster.pg.logins import PgLoginLimits  # psycopg is loaded only by nodes of a cluster

    return PgLoginLimits(dsn)
