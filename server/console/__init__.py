"""The web console: server-rendered pages under /console/ on the API's own app (docs/CONSOLE.md).

Its routes resolve the caller from a session cookie and then call the same product access
checks and Operations as the JSON API; the cookie is accepted nowhere in the API but the GET
event streams (api/deps.authenticate_stream).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import (
    routes_audit,
    routes_auth,
    routes_devices,
    routes_events,
    routes_firmware,
    routes_home,
    routes_rollouts,
    routes_settings,
    routes_webhooks,
)
from .errors import install_console_errors
from .headers import ConsoleHeaders
from .render import STATIC_DIR


def install_console(app: FastAPI) -> FastAPI:
    install_console_errors(app)
    for module in (routes_home, routes_auth, routes_devices):
        app.include_router(module.router)
    # Rollouts, firmware, events, audit, webhooks and settings (console-b).
    for module in (routes_rollouts, routes_firmware, routes_events, routes_audit, routes_webhooks, routes_settings):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.add_middleware(ConsoleHeaders)
    return app


__all__ = ["install_console"]
