"""What a rollout does next, as pure functions of its rows, what is known of its devices, and the time.

The scheduler service reads the rows, calls `plan`, writes what changed in one transaction and
then pokes the sessions of the devices it admitted. Device reports (accepted, installed, came
back running ...) go through `on_report`; operator actions through `pause`, `resume` and `abort`.
Nothing here does I/O, so every rule has a test that needs no server.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from ..rules.rollout_model import (
    DeviceState,
    ErrorAction,
    Phase,
    Rollout,
    RolloutDevice,
    RolloutState,
    Strategy,
    count_states,
)


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What the server knows of one device at this tick."""

    online: bool = False  # connected now, holding the OTA privilege in the rollout's product
    member: bool = True  # still a member of the rollout's product
    running: int | None = None  # firmware version it last reported
    blocked: str | None = None  # why no offer would reach it (development, locked elsewhere ...)


@dataclass(slots=True)
class Step:
    rollout: Rollout
    changed: dict[str, RolloutDevice] = field(default_factory=dict)
    offer: list[str] = field(default_factory=list)  # admitted now: poke their sessions
    abort: list[str] = field(default_factory=list)  # transfers to stop (the rollout no longer wants them)
    timed_out: list[str] = field(default_factory=list)  # transfers to stop: too slow; offered again later
    release: bool = False  # completed with a product default or group target: release the version
    clear_assignments: bool = False  # finished: the release rules take over from the rollout's rows
    notes: list[str] = field(default_factory=list)  # for the audit trail and the log


Put = Callable[[RolloutDevice], None]


class Report(Enum):
    ACCEPTED = "accepted"
    DEFERRED = "deferred"
    REFUSED = "refused"
    INSTALL_FAILED = "install_failed"  # hash or signature mismatch, write failure, bad chunk
    INSTALLED = "installed"
    CONFIRMED = "confirmed"
    CAME_BACK_OLD = "came_back_old"  # rebooted but still runs the old version: the update did not take
    INCOMPATIBLE = "incompatible"  # the server will not offer it: built for another platform or product


# ---------------------------------------------------------------------- device rows


def target_version(rollout: Rollout, row: RolloutDevice) -> int | None:
    """The version this row moves its device to."""
    return row.from_version if row.phase is Phase.ROLLBACK else rollout.version


def fail_attempt(rollout: Rollout, row: RolloutDevice, reason: str, now: float) -> RolloutDevice:
    """One attempt failed: offer again later while retries last, else the device has failed.
    A device that had installed the image keeps it as its target: it may only be slow to reboot,
    and must not be offered its old version meanwhile."""
    attempts = row.attempts + 1
    keep = row.assigned_version if row.state is DeviceState.INSTALLED else None
    if attempts > rollout.settings.retries:
        failed = _final(
            row, DeviceState.FAILED, f"{reason} (attempt {attempts} of {rollout.settings.retries + 1})", now
        )
        return replace(failed, assigned_version=keep)
    return replace(
        row,
        state=DeviceState.PENDING,
        attempts=attempts,
        assigned_version=keep,  # else, until offered again, the rollout holds no target for it
        offered_at=None,
        next_try_at=now + rollout.settings.retry_delay,
        reason=f"attempt {attempts} failed: {reason}",
        updated_at=now,
    )


def _final(row: RolloutDevice, state: DeviceState, reason: str, now: float) -> RolloutDevice:
    keep = state in (DeviceState.CONFIRMED, DeviceState.ROLLED_BACK)  # stays on what it reached
    return replace(
        row,
        state=state,
        reason=reason,
        offered_at=None,
        assigned_version=row.assigned_version if keep else None,
        updated_at=now,
    )


def on_report(
    rollout: Rollout, row: RolloutDevice, report: Report, version: int, detail: str, now: float
) -> RolloutDevice | None:
    """A device's OTA answer for `version`; the new row, or None when it does not concern this row."""
    if version != target_version(rollout, row):
        return None
    if rollout.state.finished and not (
        row.state is DeviceState.INSTALLED and report in (Report.CONFIRMED, Report.CAME_BACK_OLD)
    ):
        return None  # a finished rollout only still hears how installs it left rebooting ended
    if report is Report.CONFIRMED:
        # A late confirmation (after a timeout counted the attempt failed) is still the truth.
        late = row.state in (DeviceState.PENDING, DeviceState.FAILED) and row.attempts > 0
        if row.state is not DeviceState.INSTALLED and not row.state.in_flight and not late:
            return None
        done = DeviceState.ROLLED_BACK if row.phase is Phase.ROLLBACK else DeviceState.CONFIRMED
        return _final(row, done, detail or f"running version {version}", now)
    if report is Report.CAME_BACK_OLD:
        if row.state is not DeviceState.INSTALLED:
            return None
        return _final(row, DeviceState.FAILED, detail, now)  # not re-flashed forever: an operator decides
    if not row.state.in_flight:
        return None
    if report is Report.INCOMPATIBLE:
        # Not the device's failure, and no retry can change it: the rollout goes on without it.
        return _final(row, DeviceState.SKIPPED, f"not offered: {detail}", now)
    if report is Report.ACCEPTED:
        return replace(row, state=DeviceState.DOWNLOADING, reason=detail, updated_at=now)
    if report is Report.INSTALLED:
        return replace(row, state=DeviceState.INSTALLED, reason=detail or "verified; rebooting", updated_at=now)
    if report is Report.DEFERRED:
        # Not a failure: the device asked for later. Offered again after its delay.
        return replace(
            row,
            state=DeviceState.PENDING,
            assigned_version=None,
            offered_at=None,
            next_try_at=now + max(rollout.settings.retry_delay, float(detail or 0)),
            reason=f"deferred by the device for {detail or '?'} s",
            updated_at=now,
        )
    if report is Report.REFUSED:
        return _final(row, DeviceState.FAILED, f"refused by the device: {detail}", now)  # refusals are final
    return fail_attempt(rollout, row, detail, now)


# ---------------------------------------------------------------------- operator actions


def pause(rollout: Rollout, reason: str, now: float) -> Rollout:
    return replace(rollout, state=RolloutState.PAUSED, state_reason=reason, updated_at=now)


def resume(rollout: Rollout, rows: Iterable[RolloutDevice], reason: str, now: float) -> Rollout:
    """Run again; the failures so far no longer count toward the error threshold."""
    failed = sum(r.state is DeviceState.FAILED for r in rows)
    return replace(rollout, state=RolloutState.RUNNING, state_reason=reason, updated_at=now, failures_forgiven=failed)


def abort(rollout: Rollout, rows: Iterable[RolloutDevice], reason: str, now: float) -> Step:
    """Stop for good: devices not updated yet are skipped; updated ones stay on the version."""
    step = Step(
        replace(rollout, state=RolloutState.ABORTED, state_reason=reason, updated_at=now, finished_at=now),
        notes=[f"aborted: {reason}"],
    )
    for row in rows:
        if row.state is DeviceState.PENDING or row.state.in_flight:
            step.changed[row.device_id] = _final(row, DeviceState.SKIPPED, f"rollout aborted: {reason}", now)
            if row.state.in_flight:
                step.abort.append(row.device_id)
    return step


def rollback(rollout: Rollout, rows: Iterable[RolloutDevice], reason: str, now: float) -> Step:
    """Offer each device that took the version the one it ran before; skip the rest."""
    step = Step(
        replace(rollout, state=RolloutState.ROLLING_BACK, state_reason=reason, updated_at=now),
        notes=[f"rolling back: {reason}"],
    )
    for row in rows:
        if row.phase is Phase.ROLLBACK:
            continue
        if row.state in (DeviceState.INSTALLED, DeviceState.CONFIRMED):
            if row.from_version is None:
                new = _final(row, DeviceState.FAILED, "rollback: the version it ran before is unknown", now)
            else:
                # Keeps its assignment until it is offered from_version, so nothing else moves it meanwhile.
                new = replace(
                    row,
                    phase=Phase.ROLLBACK,
                    state=DeviceState.PENDING,
                    attempts=0,
                    offered_at=None,
                    next_try_at=0.0,
                    reason=f"to be rolled back to version {row.from_version}",
                    updated_at=now,
                )
            step.changed[row.device_id] = new
        elif row.state is DeviceState.PENDING or row.state.in_flight:
            step.changed[row.device_id] = _final(row, DeviceState.SKIPPED, f"rollout rolled back: {reason}", now)
            if row.state.in_flight:
                step.abort.append(row.device_id)
    return step


# ---------------------------------------------------------------------- one tick


def stage_sizes(rollout: Rollout, total: int) -> tuple[int, ...]:
    """Cumulative device counts per stage (strategies without stages have one)."""
    if rollout.settings.strategy is Strategy.STAGED and rollout.settings.stages:
        return tuple(min(total, s) for s in rollout.settings.stages)
    return (total,)


def _threshold(fraction: float, size: int) -> int:
    return max(1, math.ceil(fraction * size - 1e-9)) if size else 0


def failure_limit(rollout: Rollout, opened: int) -> int:
    """How many failed devices among the `opened` ones fire the error action (what a view marks)."""
    return _threshold(rollout.settings.error_threshold, opened)


def plan(rollout: Rollout, rows: list[RolloutDevice], views: Mapping[str, DeviceView], now: float) -> Step:
    """Everything the rollout does at this tick."""
    if rollout.state.finished:
        return Step(rollout)
    current = {row.device_id: row for row in rows}
    step = Step(rollout)

    def put(row: RolloutDevice) -> None:
        current[row.device_id] = row
        step.changed[row.device_id] = row

    timeout = rollout.settings.device_timeout
    for row in rows:
        view = views.get(row.device_id, DeviceView())
        waiting = row.state.in_flight or row.state is DeviceState.INSTALLED
        if waiting and row.offered_at is not None and now - row.offered_at >= timeout:
            what = "did not come back running it" if row.state is DeviceState.INSTALLED else "not installed"
            put(fail_attempt(rollout, row, f"{what} within {timeout:g} s of the offer", now))
            if row.state.in_flight:
                step.timed_out.append(row.device_id)
        elif row.state is DeviceState.PENDING and not view.member:
            put(_final(row, DeviceState.SKIPPED, "no longer a member of the product", now))

    if rollout.state is RolloutState.RUNNING:
        _run_update(step, current, views, now, put)
    elif rollout.state is RolloutState.ROLLING_BACK:
        # Rows a device report changed while the rollback was being written are brought along now.
        late = rollback(rollout, [r for r in current.values() if r.phase is Phase.UPDATE], rollout.state_reason, now)
        for row in late.changed.values():
            put(row)
        step.abort += late.abort
        back = [r for r in current.values() if r.phase is Phase.ROLLBACK]
        _admit(step, back, current, views, now, put, math.inf)
        if all(r.state.terminal for r in current.values()):
            rolled = sum(r.state is DeviceState.ROLLED_BACK for r in current.values())
            _finish(step, RolloutState.ROLLED_BACK, f"{rolled} device(s) back on their earlier version", now)
    return step


def _run_update(
    step: Step,
    current: dict[str, RolloutDevice],
    views: Mapping[str, DeviceView],
    now: float,
    put: Put,
) -> None:
    rollout = step.rollout
    settings = rollout.settings
    rows = sorted(current.values(), key=lambda r: r.position)
    exponential = settings.strategy is Strategy.EXPONENTIAL

    # Which devices the rollout has opened to so far (the denominator of both thresholds).
    sizes = stage_sizes(rollout, len(rows))
    if exponential:
        opened = [r for r in rows if r.state is not DeviceState.PENDING or r.attempts or r.from_version is not None]
        opened_size = len(opened)
    else:
        opened = [r for r in rows if r.stage <= rollout.current_stage]
        opened_size = len(opened)
    # Failures an operator already saw (and resumed past) do not fire the action again.
    failed = sum(r.state is DeviceState.FAILED for r in opened) - rollout.failures_forgiven
    if opened_size and failed >= _threshold(settings.error_threshold, opened_size):
        reason = f"error threshold reached: {failed} of {opened_size} device(s) failed"
        fired = replace(rollout, error_action_fired=True)
        if settings.error_action is ErrorAction.PAUSE:
            step.rollout = pause(fired, reason, now)
            step.notes.append(f"paused: {reason}")
        else:
            act = abort if settings.error_action is ErrorAction.ABORT else rollback
            acted = act(fired, current.values(), reason, now)
            step.rollout, step.abort, step.notes = acted.rollout, step.abort + acted.abort, step.notes + acted.notes
            for row in acted.changed.values():
                put(row)
        return

    stage = rollout.current_stage
    while stage + 1 < len(sizes):
        open_rows = [r for r in rows if r.stage <= stage]
        # Devices that left the product cannot confirm; failures an operator resumed past count as settled.
        size = sum(r.state is not DeviceState.SKIPPED for r in open_rows)
        confirmed = sum(r.state is DeviceState.CONFIRMED for r in open_rows)
        settled = confirmed + min(rollout.failures_forgiven, sum(r.state is DeviceState.FAILED for r in open_rows))
        if settled >= _threshold(settings.success_threshold, size):
            stage += 1
            step.notes.append(f"stage {stage + 1} of {len(sizes)} opened ({confirmed} confirmed so far)")
            continue
        if all(r.state.terminal for r in open_rows):
            # Nothing more can happen in the open stages: the threshold will never be met by waiting.
            reason = (
                f"stage {stage + 1} ended with {confirmed} of {size} device(s) confirmed, below the success"
                f" threshold {settings.success_threshold:g}: resume to go on anyway, or abort"
            )
            step.rollout = pause(replace(step.rollout, current_stage=stage), reason, now)
            step.notes.append(f"paused: {reason}")
            return
        break
    if stage != rollout.current_stage:
        step.rollout = replace(step.rollout, current_stage=stage, updated_at=now)

    budget = math.inf
    if exponential:
        confirmed = sum(r.state is DeviceState.CONFIRMED for r in rows)
        steps = min(64, confirmed // max(1, settings.rate_increase_every))  # the slots cap the rate long before
        rate = settings.rate_start * settings.rate_factor**steps
        elapsed = max(0.0, now - rollout.updated_at)
        earned = min(float(settings.max_concurrent), rollout.rate_budget + rate * elapsed / 60.0)
        budget = earned
    candidates = [r for r in rows if exponential or r.stage <= stage]
    made = _admit(step, candidates, current, views, now, put, budget)
    if exponential:
        step.rollout = replace(step.rollout, rate_budget=max(0.0, budget - made), updated_at=now)

    if all(r.state.terminal for r in current.values()):
        counts = count_states(current.values())
        summary = f"{counts['confirmed']} confirmed, {counts['failed']} failed, {counts['skipped']} skipped"
        _finish(step, RolloutState.COMPLETED, summary, now)
        step.release = rollout.target.product_default or bool(rollout.target.groups)


def _admit(
    step: Step,
    candidates: list[RolloutDevice],
    current: Mapping[str, RolloutDevice],
    views: Mapping[str, DeviceView],
    now: float,
    put: Put,
    budget: float,
) -> int:
    """Offer pending devices that are online, in order, within the free transfer slots and the budget."""
    rollout = step.rollout
    in_flight = sum(r.state.in_flight for r in current.values())
    slots = rollout.settings.max_concurrent - in_flight
    made = 0
    for row in sorted(candidates, key=lambda r: r.position):
        row = step.changed.get(row.device_id, row)
        if slots <= 0 or made + 1 > budget:
            break
        view = views.get(row.device_id, DeviceView())
        if row.state is DeviceState.PENDING and view.blocked is not None and row.phase is Phase.UPDATE:
            put(_final(row, DeviceState.SKIPPED, view.blocked, now))  # it would hold a slot and never move
            continue
        if row.state is not DeviceState.PENDING or row.next_try_at > now or not view.online or not view.member:
            continue
        from_version = row.from_version if row.from_version is not None else view.running
        goal = from_version if row.phase is Phase.ROLLBACK else rollout.version
        if view.running is not None and view.running == goal:
            done = DeviceState.ROLLED_BACK if row.phase is Phase.ROLLBACK else DeviceState.CONFIRMED
            reached = _final(row, done, f"already running version {goal}", now)
            put(replace(reached, from_version=from_version, assigned_version=goal))
            continue
        put(
            replace(
                row,
                state=DeviceState.OFFERED,
                from_version=from_version,
                assigned_version=goal,
                offered_at=now,
                reason=f"offered version {goal}",
                updated_at=now,
            )
        )
        step.offer.append(row.device_id)
        slots -= 1
        made += 1
    return made


def _finish(step: Step, state: RolloutState, reason: str, now: float) -> None:
    step.rollout = replace(step.rollout, state=state, state_reason=reason, updated_at=now, finished_at=now)
    step.notes.append(f"{state.value}: {reason}")
    step.clear_assignments = state is RolloutState.ROLLED_BACK or (
        state is RolloutState.COMPLETED and (step.rollout.target.product_default or bool(step.rollout.target.groups))
    )
