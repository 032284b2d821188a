"""When a failed webhook request is tried again, and when a delivery gives up: pure, wall time passed in.

A request with no answer, a 5xx, a 408 or a 429 is worth another try; any other answer is final.
Retries follow the configured delays in turn, the last one repeating, for as long as the next try
still falls within `retry_for` seconds of the delivery's making; after that the delivery fails.
"""

from __future__ import annotations

from dataclasses import dataclass


def retryable(status: int | None) -> bool:
    return status is None or status >= 500 or status in (408, 429)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    delays: tuple[float, ...]
    retry_for: float

    def delay_after(self, attempts: int) -> float | None:
        """Seconds to wait after the `attempts`-th request failed; None: no retries configured."""
        if not self.delays:
            return None
        return self.delays[min(attempts, len(self.delays)) - 1]

    def next_attempt_at(self, attempts: int, created_at: float, now: float) -> float | None:
        """When to try again after `attempts` requests failed (the last at `now`); None: give up."""
        delay = self.delay_after(attempts)
        if delay is None:
            return None
        at = now + delay
        return at if at <= created_at + self.retry_for else None
