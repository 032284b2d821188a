"""What happened to a webhook's deliveries: counters and the latest outcomes, in memory.

Counters say where every triggered request went, so nothing is dropped unseen: each one ends
as succeeded, failed (after its retries, or at once for a 4xx), refused (a private target),
or dropped (a queue was full).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

KEPT = 20  # latest successes and latest errors kept per webhook


@dataclass(frozen=True, slots=True)
class Attempt:
    event_id: int
    at: float  # when the request started
    attempt: int  # 1 for the first try
    status: int | None  # the HTTP status, None when no response came
    duration_ms: float
    error: str = ""  # why it failed; empty on success


@dataclass(slots=True)
class DeliveryStats:
    triggered: int = 0
    sent: int = 0  # requests made (retries included)
    succeeded: int = 0
    retried: int = 0
    failed: int = 0  # given up: retries spent, or an answer not worth retrying
    refused: int = 0  # the target was not allowed (private or loopback)
    dropped: int = 0  # a queue was full: never sent
    successes: deque[Attempt] = field(default_factory=lambda: deque(maxlen=KEPT))
    errors: deque[Attempt] = field(default_factory=lambda: deque(maxlen=KEPT))

    def record(self, attempt: Attempt) -> None:
        self.sent += 1
        (self.errors if attempt.error else self.successes).append(attempt)
