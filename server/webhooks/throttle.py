"""Adaptive per-host throttling: when a target's errors outnumber its successes, it gets one
request at a time, spaced out, until successes win again. Pure: the clock is passed in."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 20  # recent outcomes per host that decide
MIN_SAMPLES = 4  # a host is not throttled on its first error
NORMAL_IN_FLIGHT = 4  # requests at once to a healthy host
THROTTLED_INTERVAL = 1.0  # seconds between request starts to a throttled host


@dataclass(slots=True)
class HostThrottle:
    _outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _next_start: float = 0.0

    def record(self, ok: bool) -> None:
        self._outcomes.append(ok)

    @property
    def throttled(self) -> bool:
        errors = self._outcomes.count(False)
        return len(self._outcomes) >= MIN_SAMPLES and errors > len(self._outcomes) - errors

    @property
    def in_flight_limit(self) -> int:
        return 1 if self.throttled else NORMAL_IN_FLIGHT

    def start_at(self, now: float) -> float:
        """When a request may start, and book that slot."""
        if not self.throttled:
            return now
        at = max(now, self._next_start)
        self._next_start = at + THROTTLED_INTERVAL
        return at
