"""A token bucket: a device may publish `rate` events per second on average, `burst` at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float  # the most tokens held (and the starting amount)
    tokens: float = -1.0
    at: float = 0.0
    taken: int = 0  # tokens spent, ever (a session counts what it spent before its handover arrived)

    def take(self, now: float) -> bool:
        """Spend one token if there is one; `now` is a monotonic clock (the caller's)."""
        if self.tokens < 0:
            self.tokens, self.at = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.taken += 1
            return True
        return False

    def level(self, now: float) -> float:
        """The tokens held at `now` (a bucket never used holds its burst)."""
        if self.tokens < 0:
            return self.burst
        return min(self.burst, self.tokens + (now - self.at) * self.rate)

    def limit_to(self, tokens: float, now: float) -> None:
        """Hold at most `tokens` from `now` on (what the device had left on another node)."""
        self.tokens, self.at = min(self.level(now), max(0.0, tokens)), now
