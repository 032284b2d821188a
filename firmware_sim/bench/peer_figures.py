"""The peers report's arithmetic: CPU read at the moment a rate's time ends, the flag for a run
the load generator limited, and Fleetgate's figures as ratios of each peer's."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from .stats import busy_share, ratio

# A side at or above this share of its core(s) was the limit; a peer below SERVER_BELOW was not.
LOAD_SATURATED = 0.95
SERVER_BELOW = 0.8
RATIO_KEYS = ("connects_per_s", "cpu_per_conn_us", "messages_per_s", "cpu_per_message_us", "rss_per_conn_kib")
# A rate and the busy shares of the phase it came from (server side, load side).
RATE_BUSY = {
    "connects_per_s": ("connect_server_busy", "connect_load_busy"),
    "messages_per_s": ("publish_server_busy", "publish_load_busy"),
}


def cpu_at(readings: Sequence[tuple[float, float]], when: float) -> float | None:
    """Cumulative CPU seconds at `when`, interpolated between (wall, CPU) readings in time order;
    None outside them. A busy share divides CPU by a time: both must end at the same moment."""
    if not readings or when < readings[0][0] or when > readings[-1][0]:
        return None
    for (t0, c0), (t1, c1) in itertools.pairwise(readings):
        if t0 <= when <= t1:
            return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)
    return readings[-1][1]


def busy_until(readings: Sequence[tuple[float, float]], start: float, cpu_start: float, end: float,
               cores: int = 1) -> float | None:  # fmt: skip
    """Share of `cores` kept busy from `start` (CPU then: `cpu_start`) to `end`, from the readings."""
    cpu_end = cpu_at(readings, end)
    if cpu_end is None:
        return None
    return busy_share(cpu_end - cpu_start, end - start, cores)


def load_bound(server_busy: float | None, load_busy: float | None) -> bool:
    """The load generator, not the server, limited the rate: load saturated, server well below a core."""
    if server_busy is None or load_busy is None:
        return False
    return load_busy >= LOAD_SATURATED and server_busy < SERVER_BELOW


def bound_by_load(row: Mapping[str, Any], rate_key: str) -> bool:
    server_key, load_key = RATE_BUSY[rate_key]
    return load_bound(row.get(server_key), row.get(load_key))


def ratios(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | str | None]]:
    """Fleetgate's figures divided by each peer's (above 1: Fleetgate higher). A rate ratio where
    either side's rate was limited by the load generator says so: it is no ratio of servers."""
    by = {r["server"]: r for r in rows}
    ours = by.get("fleetgate")
    out: dict[str, dict[str, float | str | None]] = {}
    if ours is None:
        return out
    for name, row in by.items():
        if name == "fleetgate":
            continue
        entry: dict[str, float | str | None] = {}
        for key in RATIO_KEYS:
            value = ratio(ours.get(key), row.get(key))
            entry[key] = None if value is None else round(value, 3)
            if value is not None and key in RATE_BUSY:
                bound = [n for n, r in (("fleetgate", ours), (name, row)) if bound_by_load(r, key)]
                if bound:
                    entry[key] = f"{value:.3g} (load-bound: {', '.join(bound)})"
        out[f"fleetgate/{name}"] = entry
    return out


def ratio_lines(table: Mapping[str, Mapping[str, float | str | None]]) -> list[str]:
    """The ratios as printed under the peers table."""
    return [f"{pair}: " + ", ".join(f"{k} {'-' if v is None else v}" for k, v in entry.items())
            for pair, entry in table.items()]  # fmt: skip
