"""accept() failing for want of descriptors or memory, on any listener: one log line per burst.

Out of descriptors (EMFILE, ENFILE) or kernel memory (ENOMEM, ENOBUFS), accept fails again every
retry (each 0.1 s) until something closes. The connection waits in the listen queue meanwhile and
the server keeps serving; what the operator needs is one line saying it started, not one per retry
and not a traceback. The device port's accept loop (link/acceptor.py) calls `AcceptFailures.failed`;
the HTTP API's (Hypercorn runs trio's `serve_listeners`, which logs each failure with its traceback
on the `trio.serve_listeners` logger) is routed here by `route_serve_listeners_failures`.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable

from .logs import log_event

# The errors accept() returns when the system is out of something: retried, as trio's serve_listeners does.
ACCEPT_RETRY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY_SLEEP = 0.1  # seconds (trio's serve_listeners waits as long)
BURST_GAP = 5.0  # seconds without a failure that end a burst: the next failure logs again


class AcceptFailures:
    """Counts accept failures on one listener and logs the first of each burst."""

    def __init__(self, logger: logging.Logger, listener: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._listener = listener
        self._clock = clock
        self._last: float | None = None
        self.failures = 0
        self.bursts = 0

    def failed(self, exc: OSError) -> None:
        at = self._clock()
        self.failures += 1
        if self._last is None or at - self._last > BURST_GAP:
            self.bursts += 1
            code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            log_event(
                self._logger,
                "accept_failed",
                logging.ERROR,
                listener=self._listener,
                errno=code,
                error=os.strerror(exc.errno) if exc.errno else str(exc),
                retry_s=ACCEPT_RETRY_SLEEP,
                note=f"retrying; further failures are not logged until {BURST_GAP:g} s pass without one",
            )
        self._last = at


class _ServeListenersHandler(logging.Handler):
    """trio's serve_listeners logs each accept failure at ERROR with exc_info: count it instead."""

    def __init__(self, failures: AcceptFailures) -> None:
        super().__init__(logging.ERROR)
        self.failures = failures

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.failures.failed(exc if isinstance(exc, OSError) else OSError(None, record.getMessage()))


def route_serve_listeners_failures(logger: logging.Logger, listener: str) -> AcceptFailures:
    """Send trio's serve_listeners failure lines (Hypercorn's accept loop) to one AcceptFailures
    logging on `logger`, and nowhere else (they would reach stderr with a traceback each)."""
    failures = AcceptFailures(logger, listener)
    trio_logger = logging.getLogger("trio.serve_listeners")
    trio_logger.handlers[:] = [_ServeListenersHandler(failures)]
    trio_logger.propagate = False
    return failures
