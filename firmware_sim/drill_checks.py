"""A drill's expectations as pure functions: which end state each device must reach, given its
fault and how the rollout was expected to end, and the rollout-wide checks.

A device is judged on both sides: the server's per-device row (state, reason) and the device's
own record (the version it runs at the end, what it stored, what it said). They must agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CAME_BACK_OLD = re.compile(r"came back|old version|did not take", re.IGNORECASE)
IN_FLIGHT = frozenset({"offered", "downloading", "installed"})


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What a drill device knows of itself at the end."""

    device_id: str
    fault: str
    late: bool
    running: int  # the version its last HELLO reported (or would report)
    connected: bool  # completed at least one handshake
    first_status: str | None
    bytes_by_version: Mapping[int, int] = field(default_factory=dict)
    accept_offsets: Sequence[tuple[int, int]] = ()  # (version, offset) of each OTA_ACCEPT
    completions: Sequence[tuple[int, str]] = ()  # (version, status) of each OTA_COMPLETE
    drops: int = 0


@dataclass(frozen=True, slots=True)
class Expectation:
    expect: str  # completed | rolled_back | paused | aborted
    old: int
    new: int
    retries: int
    image_size: int
    restart_at: float | None = None
    on_error: str = "pause"  # the rollout's error action

    @property
    def action_fires(self) -> bool:
        """Whether ending as expected takes the error action: a rollback or an abort always does; a
        pause does when pausing is the action (otherwise it is the success threshold's pause)."""
        return self.expect in ("rolled_back", "aborted") or (self.expect == "paused" and self.on_error == "pause")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def allowed_states(fault: str, exp: Expectation) -> frozenset[str]:
    """The server states a device with `fault` may end in when the rollout ends as expected."""
    reaches = "failed" if fault in ("refuse", "bootfail") or (fault == "corrupt" and exp.retries == 0) else "confirmed"
    if exp.expect == "completed":
        return frozenset({reaches})
    if exp.expect == "rolled_back":
        return frozenset({"skipped", "failed" if reaches == "failed" else "rolled_back"})
    installs = fault != "refuse"
    if exp.expect == "aborted":  # a device that installed before the abort is left "installed" in its row
        return frozenset({reaches, "skipped"} | ({"installed"} if installs else set()))
    return frozenset({reaches, "pending"} | (IN_FLIGHT if installs else {"offered"}))  # paused: some still in flight


def device_problem(facts: DeviceFacts, row: Mapping[str, Any] | None, exp: Expectation) -> str | None:
    """Why this device did not end as expected, or None."""
    if row is None:
        return "not in the rollout"
    state, reason = str(row.get("state")), str(row.get("reason") or "")
    allowed = allowed_states(facts.fault, exp)
    if state not in allowed:
        return f"server state {state} ({reason}), expected {' or '.join(sorted(allowed))}"
    want = {"confirmed": exp.new, "rolled_back": exp.old, "failed": exp.old, "skipped": exp.old}.get(state)
    if facts.fault == "bootfail":
        want = exp.old  # it never boots the new image, whatever its row says
    if want is not None and facts.running != want:
        return f"server state {state} but the device runs version {facts.running}, not {want}"
    if state == "failed" and facts.fault == "bootfail" and not CAME_BACK_OLD.search(reason):
        return f"failed, but the reason does not say it came back on the old version: {reason!r}"
    if state == "failed" and facts.fault == "refuse" and "refus" not in reason.lower():
        return f"failed, but the reason does not say it refused: {reason!r}"
    if facts.fault == "drop" and state in ("confirmed", "rolled_back"):
        return _drop_problem(facts, exp) if facts.drops else "drop device updated without ever dropping the link"
    mismatched = any(status == "hash_mismatch" for _, status in facts.completions)
    if facts.fault == "corrupt" and state in ("confirmed", "rolled_back") and not mismatched:
        return "corrupt device confirmed without ever reporting hash_mismatch (the fault did not fire)"
    return None


def _drop_problem(facts: DeviceFacts, exp: Expectation) -> str | None:
    received = facts.bytes_by_version.get(exp.new, 0)
    if received >= 2 * exp.image_size:
        return f"received {received} bytes of a {exp.image_size}-byte image: restarted rather than resumed"
    if not any(version == exp.new and offset > 0 for version, offset in facts.accept_offsets):
        return "dropped mid-transfer but never resumed from a non-zero offset"
    return None


def device_checks(facts: Sequence[DeviceFacts], rows: Mapping[str, Mapping[str, Any]], exp: Expectation) -> list[Check]:
    """One check per fault kind (healthy, drop, ...), naming up to five devices that failed it."""
    by_fault: dict[str, list[tuple[DeviceFacts, str | None]]] = {}
    for f in facts:
        by_fault.setdefault(f.fault, []).append((f, device_problem(f, rows.get(f.device_id), exp)))
    checks = []
    for fault, judged in sorted(by_fault.items()):
        bad = [(f, p) for f, p in judged if p is not None]
        allowed = " or ".join(sorted(allowed_states(fault, exp)))
        detail = f"{len(judged) - len(bad)}/{len(judged)} ended {allowed}"
        if bad:
            detail += "; " + "; ".join(f"{f.device_id}: {p}" for f, p in bad[:5])
            detail += f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        checks.append(Check(f"devices: {fault}", not bad, detail))
    return checks


def rollout_checks(
    rollout: Mapping[str, Any] | None,
    exp: Expectation,
    facts: Sequence[DeviceFacts],
    restarts: int,
    timed_out: bool,
) -> list[Check]:
    checks = []
    state = rollout.get("state") if rollout else None
    detail = f"{state} ({rollout.get('state_reason')})" if rollout else "no rollout was created"
    if timed_out:
        detail += "; the drill timed out before the rollout ended"
    ended = state == exp.expect and not timed_out
    checks.append(Check("rollout final state", ended, f"{detail}; expected {exp.expect}"))
    fired = bool(rollout.get("error_action_fired")) if rollout else False
    want = exp.action_fires
    checks.append(Check("error action", fired == want, f"fired: {fired}; expected: {want}"))
    on_time = [f for f in facts if not f.late]
    not_ok = [f for f in on_time if f.first_status != "ok"]
    checks.append(
        Check(
            "fleet connected",
            not not_ok,
            f"{len(on_time) - len(not_ok)}/{len(on_time)} on-time devices connected with status ok"
            + "".join(f"; {f.device_id}: {f.first_status or 'never connected'}" for f in not_ok[:5]),
        )
    )
    late = [f for f in facts if f.late]
    if late:
        absent = [f for f in late if not f.connected]
        checks.append(Check("late devices joined", not absent, f"{len(late) - len(absent)}/{len(late)} connected"))
    if exp.restart_at is not None:
        checks.append(Check("server restarted", restarts >= 1, f"{restarts} restart(s) mid-rollout"))
    return checks
