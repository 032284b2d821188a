"""Pure arithmetic of the benchmark: percentiles, rates and per-operation costs.

Nothing here touches a clock, a process or a socket, so the tests can check it exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile (p in 0..100) of `values`, or None if there are none.

    Nearest rank (no interpolation): the value reported is one that was measured, and p99 of
    100 samples is the 99th smallest, as load-testing tools report it.
    """
    if not 0 <= p <= 100:
        raise ValueError("p must be 0..100")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max in milliseconds (rounded to microseconds)."""
    out: dict[str, float | None] = {}
    for name, p in (("p50_ms", 50.0), ("p99_ms", 99.0), ("max_ms", 100.0)):
        value = percentile(seconds, p)
        out[name] = None if value is None else round(value * 1000, 3)
    return out


def rate(count: float, seconds: float) -> float | None:
    """count per second, or None for an empty interval."""
    if seconds <= 0:
        return None
    return count / seconds


def per_op_us(cpu_seconds: float, ops: int) -> float | None:
    """CPU microseconds per operation, or None when nothing happened."""
    if ops <= 0:
        return None
    return cpu_seconds / ops * 1e6


def rounded(value: float | None, digits: int = 1) -> float | None:
    """round(), passing None (a figure that could not be measured) through."""
    return None if value is None else round(value, digits)


def busy_share(cpu_seconds: float, wall_seconds: float, cores: int = 1) -> float | None:
    """Share of `cores` CPUs kept busy over the wall-clock interval (1.0 = saturated)."""
    if wall_seconds <= 0 or cores <= 0:
        return None
    return cpu_seconds / (wall_seconds * cores)


SATURATED = 0.9  # a side at or above this share of its cores in a slice was the limit then


def saturated_share(readings: Sequence[tuple[float, float]], cores: int = 1) -> float | None:
    """Of the time between the first and last (wall, cumulative CPU seconds) reading, the share
    spent in slices where the process kept `cores` at least SATURATED busy. A phase's average
    busy share hides a ramp or a stall: 80% on average can be 100% for most of the phase."""
    wall = readings[-1][0] - readings[0][0] if len(readings) > 1 else 0.0
    if wall <= 0 or cores <= 0:
        return None
    saturated = 0.0
    for (t0, cpu0), (t1, cpu1) in itertools.pairwise(readings):
        if t1 > t0 and (cpu1 - cpu0) / ((t1 - t0) * cores) >= SATURATED:
            saturated += t1 - t0
    return saturated / wall


def split_evenly(n: int, parts: int) -> list[int]:
    """n items over `parts` buckets, sizes differing by at most one (earlier buckets larger)."""
    if parts <= 0:
        raise ValueError("parts must be at least 1")
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either is missing or theirs is zero."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def parse_sizes(text: str) -> list[int]:
    """'1k,5k,10000' -> [1000, 5000, 10000]; k and m suffixes, positive integers only."""
    out: list[int] = []
    for part in text.split(","):
        token = part.strip().lower()
        if not token:
            continue
        scale = 1
        if token.endswith("k"):
            scale, token = 1000, token[:-1]
        elif token.endswith("m"):
            scale, token = 1_000_000, token[:-1]
        try:
            value = float(token) * scale
        except ValueError:
            raise ValueError(f"not a count: {part!r}") from None
        if value < 1 or value != int(value):
            raise ValueError(f"not a positive whole count: {part!r}")
        out.append(int(value))
    if not out:
        raise ValueError("no counts given")
    return out


def count_by(items: Iterable[str]) -> dict[str, int]:
    """How often each string occurs, most frequent first."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
