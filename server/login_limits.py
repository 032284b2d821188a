"""Failed-login limits in memory: per (username, client IP), and per client IP for sprayers.

Sliding windows of failure times. Memory is bounded: past `max_keys` the oldest keys are
forgotten (only an attack from very many addresses at once can push counters out early).
One node's own: the nodes of a cluster share theirs in PostgreSQL (cluster/pg/logins.py). A leaf
beside logs.py, since both the API and the cluster use it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import trio


class LoginLimits(Protocol):
    """What the token route asks before and after checking a password."""

    async def attempt(self, username: str, ip: str) -> float | None:
        """None if this attempt may proceed (it counts as a failure until `succeeded`), else the
        seconds until one may."""
        ...

    async def succeeded(self, username: str, ip: str) -> None:
        """The attempt was right: it was no failure, and the username's earlier ones are forgiven."""
        ...

    async def aclose(self) -> None:
        """The API is stopping: release what the limits hold (a database connection)."""
        ...


class LoginLimiter:
    def __init__(
        self,
        *,
        per_user: int = 10,
        per_ip: int = 100,
        window: float = 60.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.per_ip = per_ip
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], at: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= at - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    async def attempt(self, username: str, ip: str) -> float | None:
        await trio.lowlevel.checkpoint()
        return self.attempt_now(username, ip)

    async def succeeded(self, username: str, ip: str) -> None:
        await trio.lowlevel.checkpoint()
        self.succeeded_now(username, ip)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()  # memory only: nothing to release

    def attempt_now(self, username: str, ip: str) -> float | None:
        """Start a login attempt: None if it may proceed (it counts as a failure until
        `succeeded`, so concurrent guesses cannot slip past the limit together), else the
        seconds until one may."""
        at = self.clock()
        keys = (((username.lower(), ip), self.per_user), (("", ip), self.per_ip))
        waits = []
        for key, limit in keys:
            times = self._recent(key, at)
            if times is not None and len(times) >= limit:
                waits.append(times[len(times) - limit] + self.window - at)
        if waits:
            return max(waits)
        for key, _ in keys:
            self._failures.setdefault(key, deque()).append(at)
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]
        return None

    def succeeded_now(self, username: str, ip: str) -> None:
        """The attempt was right: it was no failure, and the username's earlier ones are forgiven."""
        self._failures.pop((username.lower(), ip), None)
        per_ip = self._failures.get(("", ip))
        if per_ip:
            per_ip.pop()
