"""Services that must not take the server down with them: a failure of the webhook dispatch or the
rollout scheduler (a bug in one delivery's handling, a database that went away) is logged once
with its traceback, counted, and the service started again after a backoff, while devices and the
API go on being served. Cancellation is never caught (trio.Cancelled and KeyboardInterrupt are
BaseExceptions, and so is a group holding one), so stopping the server stops a supervised service
as before. The device acceptor and the API server are not supervised: their failure stops the process.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger("fleetgate.supervisor")

FIRST_BACKOFF = 1.0  # seconds before the first restart; doubled after each failure in a row
MAX_BACKOFF = 30.0
# A service that ran this long since its last start counts as recovered: its next failure waits
# FIRST_BACKOFF again.
HEALTHY_AFTER = 60.0

Service = Callable[..., Awaitable[None]]  # started as nursery.start(service): takes task_status


class Supervisor:
    """Runs services under `supervise`, counting each one's failures (by name) for the server's life."""

    def __init__(self) -> None:
        self.failures: collections.Counter[str] = collections.Counter()

    async def supervise(
        self, name: str, service: Service, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run `service` until cancelled, restarting it after each failure. Started once the service
        first started (or first failed: the server does not wait on a broken service)."""
        backoff = FIRST_BACKOFF
        while True:
            began = trio.current_time()
            error: Exception | None = None
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(service)
                    task_status.started()
                    task_status = trio.TASK_STATUS_IGNORED
            except Exception as exc:  # not BaseException: cancellation and KeyboardInterrupt go through
                error = _unwrapped(exc)
            task_status.started()  # if it failed before it started: the server goes on without it
            task_status = trio.TASK_STATUS_IGNORED
            if trio.current_time() - began >= HEALTHY_AFTER:
                backoff = FIRST_BACKOFF
            self.failures[name] += 1
            # A service runs until cancelled: returning is a failure too. One line, with the traceback.
            fields = {"service": name, "failures": self.failures[name], "restart_in": backoff,
                      "outcome": "raised" if error is not None else "returned"}  # fmt: skip
            log.error("service_failed", exc_info=error, extra={"fields": fields})
            await trio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)


def _unwrapped(exc: Exception) -> Exception:
    """The one exception a nursery wrapped in a group (its own traceback reads best), else the group."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
