"""Logging on stderr: one JSON object per line (default), or one readable line per event.

Both start with the time in ISO 8601 UTC with milliseconds (2026-12-06T16:05:03.123Z).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
import time
from typing import Any

LOG_FORMATS = ("json", "text")


# One encoder for every line: json.dumps(default=...) builds a new one per call.
_JSON = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso_clock(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _JSON.encode(out)


class TextFormatter(logging.Formatter):
    """`2026-12-06T16:05:03.123Z info  fleetgate.app listening host=127.0.0.1 device_port=5683`"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_iso_clock(record.created), f"{record.levelname.lower():<7}", record.name, record.getMessage()]
        fields = getattr(record, "fields", None) or {}
        parts.extend(f"{key}={_text_value(value)}" for key, value in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: object) -> str:
    """Plain words stay bare; anything with spaces, quotes or structure is JSON-quoted."""
    if isinstance(value, str) and value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return json.dumps(value, default=str)


# Libraries whose own loggers write into ours (else Python's last-resort handler prints their
# warnings to stderr as plain text between our lines): psycopg and its pool (psycopg.pool), at
# warning and above whatever our level (their info and debug lines are per connection).
LIBRARY_LOGGERS = ("psycopg",)


def setup_logging(level: str = "info", log_format: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if log_format == "text" else JsonFormatter())
    root = logging.getLogger("fleetgate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = [handler]
        library.setLevel(max(root.level, logging.WARNING))
        library.propagate = False


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log a named event with fields (kept as fields, so tests and tools can read them).

    The record is made here and handed to the logger's handlers as `Logger.log` would, without
    its search of the call stack for a file and line no formatter prints (every connection logs
    a line or two)."""
    if logger.isEnabledFor(level):
        record = logger.makeRecord(logger.name, level, "", 0, event, (), None, extra={"fields": fields})
        logger.handle(record)


class IsoClock:
    """`iso(t)` for times that come in order, as a log's do: the date and second formatted once per
    second, the milliseconds each call (the same digits as `iso`, rounding included)."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        # (second, "YYYY-MM-DDTHH:MM:SS."), replaced as one: formatters may run in several threads.
        self._cached: tuple[int, str] | None = None

    def __call__(self, t: float) -> str:
        # datetime.fromtimestamp's rounding: the fraction to whole microseconds, half to even,
        # carried into the second.
        fraction, whole = math.modf(t)
        micros = round(fraction * 1e6)
        second = int(whole)
        if micros >= 1_000_000:
            micros -= 1_000_000
            second += 1
        elif micros < 0:
            micros += 1_000_000
            second -= 1
        cached = self._cached
        if cached is None or cached[0] != second:
            cached = self._cached = (second, iso(second)[:-4])  # iso ends in "mmmZ"
        return f"{cached[1]}{micros // 1000:03d}Z"


_iso_clock = IsoClock()


def iso(t: float) -> str:
    """ISO 8601 in UTC with milliseconds, as Particle writes times."""
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> float:
    """Wall-clock time for records (sessions use trio's clock for deadlines)."""
    return time.time()
