"""Hypercorn's Trio worker serving the API inside the server's own trio.run.

We bind the socket ourselves and hand Hypercorn its file descriptor: a bind error is then a
plain OSError raised before any task starts (inside Hypercorn it would surface wrapped in
exception groups), and port 0 gives a port we can report.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.logging import Logger
from hypercorn.trio import serve
from hypercorn.typing import ResponseSummary, WWWScope

from ..accept_failures import route_serve_listeners_failures
from ..logs import log_event

log = logging.getLogger("fleetgate.http")
access_log = logging.getLogger("fleetgate.http.access")

_TOKEN_PATH = "/v1/access_tokens/"
READ_TIMEOUT = 120  # seconds without a byte from the client, even mid-request: stalled peers do not pile up
# (a request being answered counts too: 120 s is far above the slowest one, a 10,000-device import)


def bind_api_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart without waiting out TIME_WAIT
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _loggable_path(path: str) -> str:
    """Tokens never reach the log: not the query string (access_token=), not a token in the path."""
    if path.startswith(_TOKEN_PATH) and path != _TOKEN_PATH + "current":
        return _TOKEN_PATH + "{token}"
    return path[:256]


class _JsonLogs(Logger):
    """Hypercorn's logger speaking our JSON lines: one `http_request` line per request, and its
    own chatter ("Running on ...") demoted to debug (the server logs `api_listening` instead)."""

    async def access(self, request: WWWScope, response: ResponseSummary | None, request_time: float) -> None:
        client = request.get("client")
        log_event(
            access_log,
            "http_request" if response else "http_request_unanswered",
            # Hypercorn 0.18 also reports answered requests once without a response: keep those quiet.
            logging.INFO if response else logging.DEBUG,
            method=request.get("method", "WS"),
            path=_loggable_path(request.get("path", "")),
            status=response["status"] if response else None,
            ms=round(request_time * 1000, 1),
            client=client[0] if client else None,
        )

    async def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        await self.debug(message, *args, **kwargs)


def hypercorn_config(sock: socket.socket, grace: float) -> Config:
    """Takes ownership of `sock`."""
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.logger_class = _JsonLogs
    config.accesslog = None
    config.errorlog = log
    config.graceful_timeout = grace
    config.read_timeout = READ_TIMEOUT
    config.include_server_header = False
    return config


async def serve_api(
    app: Any,
    sock: socket.socket,
    *,
    grace: float,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown_trigger` returns, then let requests in flight finish for `grace` s.
    Started once listening, with Hypercorn's list of bound URLs."""
    route_serve_listeners_failures(log, "api")  # out of descriptors: one line per burst, no traceback
    await serve(app, hypercorn_config(sock, grace), shutdown_trigger=shutdown_trigger, task_status=task_status)
