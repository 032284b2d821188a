"""The drill's JSON report and printed summary, from plain data (no I/O, no clock)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .drill_checks import Check, DeviceFacts

TimelineEvent = tuple[float, str, Mapping[str, int | str]]


@dataclass(frozen=True, slots=True)
class Sample:
    """One poll of the rollout: seconds since the drill started, its state, devices per state."""

    t: float
    state: str
    counts: Mapping[str, int]

    def as_json(self) -> dict[str, object]:
        return {"t": self.t, "state": self.state, "counts": dict(self.counts)}


def facts_from_timeline(
    device_id: str,
    fault: str,
    late: bool,
    running: int,
    first_status: str | None,
    bytes_by_version: Mapping[int, int],
    timeline: Sequence[TimelineEvent],
) -> DeviceFacts:
    accepts, completions, drops, version = [], [], 0, 0
    for _, event, detail in timeline:
        if event == "offer":
            version = int(detail.get("version", 0))
        elif event == "accept":
            accepts.append((int(detail.get("version", version)), int(detail.get("offset", 0))))
        elif event == "complete":
            completions.append((int(detail.get("version", version)), str(detail.get("status", ""))))
        elif event == "drop":
            drops += 1
    return DeviceFacts(
        device_id=device_id,
        fault=fault,
        late=late,
        running=running,
        connected=any(event == "connected" for _, event, _ in timeline),
        first_status=first_status,
        bytes_by_version=dict(bytes_by_version),
        accept_offsets=accepts,
        completions=completions,
        drops=drops,
    )


def timings(timeline: Sequence[TimelineEvent], new: int) -> dict[str, float | None]:
    """Seconds since the drill started: first connection, first offer of `new`, its verification,
    and the first connection running it."""

    def first(match: str, **want: int | str) -> float | None:
        for t, event, detail in timeline:
            if event == match and all(detail.get(k) == v for k, v in want.items()):
                return t
        return None

    return {
        "connected_s": first("connected"),
        "offered_s": first("offer", version=new),
        "verified_s": first("complete", version=new, status="verified"),
        "running_new_s": first("connected", version=new),
    }


def device_entry(
    facts: DeviceFacts,
    row: Mapping[str, Any] | None,
    timeline: Sequence[TimelineEvent],
    connects: int,
    new: int,
    problem: str | None,
) -> dict[str, object]:
    return {
        "id": facts.device_id,
        "fault": facts.fault,
        "late": facts.late,
        "ok": problem is None,
        "problem": problem,
        "server": dict(row) if row is not None else None,
        "running_version": facts.running,
        "connects": connects,
        "bytes_received": {str(v): n for v, n in sorted(facts.bytes_by_version.items())},
        "accept_offsets": [list(a) for a in facts.accept_offsets],
        "completions": [list(c) for c in facts.completions],
        "timings": timings(timeline, new),
        "timeline": [[t, event, dict(detail)] for t, event, detail in timeline],
    }


def build_report(
    settings: Mapping[str, object],
    rollout: Mapping[str, Any] | None,
    devices: Sequence[dict[str, object]],
    series: Sequence[Sample],
    restarts: Sequence[float],
    checks: Sequence[Check],
    elapsed: float,
    rollout_started_s: float | None,
) -> dict[str, object]:
    return {
        "passed": all(c.ok for c in checks),
        "settings": dict(settings),
        "elapsed_s": round(elapsed, 3),
        "rollout_started_s": rollout_started_s,
        "server_restarts_s": list(restarts),
        "rollout": dict(rollout) if rollout is not None else None,
        "checks": [c.as_json() for c in checks],
        "outcomes": outcome_table(devices),
        "series": [s.as_json() for s in series],
        "devices": list(devices),
    }


def outcome_table(devices: Sequence[Mapping[str, object]]) -> dict[str, dict[str, int]]:
    """fault -> server state -> devices."""
    table: dict[str, Counter[str]] = {}
    for d in devices:
        server = d.get("server")
        state = str(server.get("state")) if isinstance(server, Mapping) else "absent"
        table.setdefault(str(d["fault"]), Counter())[state] += 1
    return {fault: dict(sorted(c.items())) for fault, c in sorted(table.items())}


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    rollout = report.get("rollout") or {}
    lines = [
        f"drill: {len(report['devices'])} devices, rollout {rollout.get('state', 'not created')}"
        f" ({rollout.get('state_reason', '')}) in {report['elapsed_s']} s"
        + (f", server restarted at {', '.join(f'{t:g} s' for t in report['server_restarts_s'])}"
           if report["server_restarts_s"] else ""),
        f"counts: {rollout.get('counts', {})}",
    ]  # fmt: skip
    for fault, states in report["outcomes"].items():
        lines.append(f"  {fault:<9} {', '.join(f'{s} {n}' for s, n in states.items())}")
    for check in report["checks"]:
        lines.append(f"{'ok  ' if check['ok'] else 'FAIL'} {check['name']}: {check['detail']}")
    lines.append("drill passed" if report["passed"] else "drill FAILED")
    return lines
