"""The rollout rules as pure functions: stage parsing, admission, thresholds, retries, reports,
rollback and completion, then Hypothesis over random rows, views and times. No event loop."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.ops.rollouts import MAX_STAGES, parse_stages
from server.rollouts.planner import (
    DeviceView,
    Report,
    Step,
    abort,
    on_report,
    pause,
    plan,
    resume,
    rollback,
    target_version,
)
from server.rules.errors import Invalid
from server.rules.rollout_model import (
    DeviceState,
    ErrorAction,
    Phase,
    Rollout,
    RolloutDevice,
    RolloutSettings,
    RolloutState,
    RolloutTarget,
    Strategy,
)

VERSION = 2
OLD = 1
T0 = 1000.0

PEND = DeviceState.PENDING
OFF = DeviceState.OFFERED
DL = DeviceState.DOWNLOADING
INS = DeviceState.INSTALLED
CONF = DeviceState.CONFIRMED
FAIL = DeviceState.FAILED
SKIP = DeviceState.SKIPPED
RB = DeviceState.ROLLED_BACK


# ---------------------------------------------------------------------- helpers


def make_rollout(
    *,
    state: RolloutState = RolloutState.RUNNING,
    target: RolloutTarget | None = None,
    current_stage: int = 0,
    rate_budget: float = 0.0,
    updated_at: float = T0,
    failures_forgiven: int = 0,
    **changes: Any,
) -> Rollout:
    return Rollout(
        id=1,
        product_id=7,
        version=VERSION,
        target=target or RolloutTarget(product_default=True),
        settings=RolloutSettings(**changes),
        state=state,
        state_reason="started",
        current_stage=current_stage,
        rate_budget=rate_budget,
        error_action_fired=False,
        created_at=T0,
        created_by="user:admin",
        updated_at=updated_at,
        failures_forgiven=failures_forgiven,
    )


def dev(i: int) -> str:
    return f"d{i:02d}"


def make_rows(n: int, stages: Sequence[int] = ()) -> list[RolloutDevice]:
    """n pending rows in position order; `stages` are the cumulative ends (as parse_stages returns)."""
    ends = list(stages) or [n]
    return [RolloutDevice(1, dev(i), i, next(s for s, end in enumerate(ends) if i < end)) for i in range(n)]


def with_states(rows: list[RolloutDevice], by_index: dict[int, DeviceState], **changes: Any) -> list[RolloutDevice]:
    out = list(rows)
    for i, state in by_index.items():
        extra: dict[str, Any] = {"from_version": OLD}
        if state.in_flight or state is INS:
            extra["offered_at"] = T0
            extra["assigned_version"] = VERSION
        if state is CONF:
            extra["assigned_version"] = VERSION
        out[i] = replace(out[i], state=state, **{**extra, **changes})
    return out


def online(
    rows: Sequence[RolloutDevice], running: int | None = OLD, but: dict[str, DeviceView] | None = None
) -> dict[str, DeviceView]:
    """Every row's device connected and running `running`, but for the views in `but`."""
    return {**{r.device_id: DeviceView(online=True, running=running) for r in rows}, **(but or {})}


def apply(rows: list[RolloutDevice], step: Step) -> list[RolloutDevice]:
    return [step.changed.get(r.device_id, r) for r in rows]


def states(rows: Sequence[RolloutDevice]) -> list[DeviceState]:
    return [r.state for r in rows]


# ---------------------------------------------------------------------- parse_stages


@pytest.mark.parametrize(
    ("stages", "total", "expected"),
    [
        ([], 10, (10,)),
        (["100%"], 10, (10,)),
        (["10%", "50%"], 10, (1, 5, 10)),
        (["25%", "50%"], 12, (3, 6, 12)),
        (["30%"], 10, (3, 10)),  # 30% of 10 is exactly 3, not 4 after float rounding
        (["33%"], 10, (4, 10)),  # a partial device rounds up
        (["0.1%"], 10, (1, 10)),  # at least one device
        ([" 20% ", "1e2%"], 10, (2, 10)),
        ([1, 5], 10, (1, 5, 10)),
        (["2", " 4 "], 10, (2, 4, 10)),
        ([3, 10], 10, (3, 10)),  # the final stage is not repeated
        ([3, "100%"], 10, (3, 10)),
        ([20], 10, (10,)),  # a count above the fleet is the fleet
        ([1, "50%", 8], 10, (1, 5, 8, 10)),
        ([1], 1, (1,)),
    ],
)
def test_parse_stages(stages: list[str | int], total: int, expected: tuple[int, ...]) -> None:
    assert parse_stages(stages, total) == expected


@pytest.mark.parametrize(
    "stages",
    [
        [5, 5],
        [5, 3],
        ["50%", "20%"],
        ["50%", 5],  # 5 of 10 again
        ["0%"],
        ["101%"],
        ["-5%"],
        ["nan%"],
        ["inf%"],
        ["%"],
        [""],
        ["abc"],
        ["5.5"],
        ["5 devices"],
        [0],
        [-1],
        ["0"],
        list(range(1, MAX_STAGES + 2)),
    ],
)
def test_parse_stages_refuses(stages: list[str | int]) -> None:
    with pytest.raises(Invalid) as caught:
        parse_stages(stages, 10, strict=True)  # as the API checks them
    assert caught.value.field == "stages"


def test_at_most_max_stages() -> None:
    assert len(parse_stages(list(range(1, MAX_STAGES + 1)), 100)) == MAX_STAGES + 1  # plus the implied last


@pytest.mark.parametrize(("stages", "total"), [([2, 5, 10], 3), (["50%", "100%"], 1), (["1%", "2%"], 50)])
def test_stages_that_collapse_on_a_small_fleet_are_merged_not_refused(stages: list[str | int], total: int) -> None:
    out = parse_stages(stages, total)
    assert out[-1] == total and all(a < b for a, b in itertools.pairwise(out))


# ---------------------------------------------------------------------- admission


def test_only_online_members_are_offered_and_leavers_are_skipped() -> None:
    rollout = make_rollout()
    rows = make_rows(4)
    views = {
        dev(0): DeviceView(online=True, running=OLD),
        dev(1): DeviceView(online=False, running=OLD),
        dev(2): DeviceView(online=True, member=False, running=OLD),
        # dev(3): nothing known, so offline
    }
    step = plan(rollout, rows, views, T0 + 1)
    assert step.offer == [dev(0)]
    offered = step.changed[dev(0)]
    assert offered.state is OFF and offered.offered_at == T0 + 1
    assert offered.assigned_version == VERSION and offered.from_version == OLD
    assert offered.reason == f"offered version {VERSION}"
    assert step.changed[dev(2)].state is SKIP
    assert step.changed[dev(2)].reason == "no longer a member of the product"
    assert set(step.changed) == {dev(0), dev(2)}
    assert step.rollout == rollout


@pytest.mark.parametrize(("next_try_at", "offered"), [(T0 + 5, False), (T0 + 1, True), (T0, True)])
def test_a_retry_waits_for_next_try_at(next_try_at: float, offered: bool) -> None:
    rows = [replace(make_rows(1)[0], attempts=1, next_try_at=next_try_at)]
    step = plan(make_rollout(), rows, online(rows), T0 + 1)
    assert (step.offer == [dev(0)]) is offered


def test_only_the_open_stage_is_offered() -> None:
    rollout = make_rollout(strategy=Strategy.STAGED, stages=(2, 5))
    rows = make_rows(5, (2, 5))
    step = plan(rollout, rows, online(rows), T0)
    assert step.offer == [dev(0), dev(1)]
    assert step.rollout.current_stage == 0


def test_offers_go_in_position_order() -> None:
    rows = list(reversed(make_rows(4)))
    step = plan(make_rollout(max_concurrent=2), rows, online(rows), T0)
    assert step.offer == [dev(0), dev(1)]


@pytest.mark.parametrize(
    ("busy", "max_concurrent", "offered"),
    [
        ({}, 3, 3),
        ({0: OFF}, 3, 2),
        ({0: OFF, 1: DL}, 3, 1),
        ({0: OFF, 1: DL, 2: DL}, 3, 0),
        ({0: OFF, 1: DL, 2: DL, 3: OFF}, 3, 0),  # over the limit already (the limit was lowered)
        ({0: INS, 1: INS}, 3, 3),  # rebooting devices hold no transfer slot
        ({0: CONF, 1: FAIL, 2: SKIP}, 3, 3),
        ({}, 1, 1),
        ({}, 50, 7),
    ],
)
def test_max_concurrent_counts_transfers_in_flight(
    busy: dict[int, DeviceState], max_concurrent: int, offered: int
) -> None:
    rows = with_states(make_rows(7), busy)
    step = plan(make_rollout(max_concurrent=max_concurrent, error_threshold=0.5), rows, online(rows), T0)
    assert len(step.offer) == offered
    after = apply(rows, step)
    if step.offer:
        assert sum(r.state.in_flight for r in after) <= max_concurrent


def test_a_device_already_running_the_version_is_confirmed_without_a_slot() -> None:
    rows = make_rows(3)
    views = online(rows, but={dev(0): DeviceView(online=True, running=VERSION)})
    step = plan(make_rollout(max_concurrent=2), rows, views, T0)
    done = step.changed[dev(0)]
    assert done.state is CONF and done.reason == f"already running version {VERSION}"
    assert done.from_version == VERSION and done.assigned_version == VERSION and done.offered_at is None
    assert step.offer == [dev(1), dev(2)]  # both slots still free


def test_from_version_is_what_the_device_ran_when_first_offered() -> None:
    rows = make_rows(3)
    rows[1] = replace(rows[1], from_version=5, attempts=1)  # a retry keeps the version it ran at first
    views = online(rows, but={dev(2): DeviceView(online=True, running=None)})
    step = plan(make_rollout(), rows, views, T0)
    assert [step.changed[dev(i)].from_version for i in range(3)] == [OLD, 5, None]


def test_a_paused_rollout_offers_nothing() -> None:
    rows = make_rows(3)
    step = plan(make_rollout(state=RolloutState.PAUSED), rows, online(rows), T0)
    assert step.offer == [] and step.changed == {}


# ---------------------------------------------------------------------- stages


@pytest.mark.parametrize(
    ("success_threshold", "confirmed", "stage"),
    [
        (1.0, 3, 0),
        (1.0, 4, 1),
        (0.5, 1, 0),
        (0.5, 2, 1),
        (0.75, 2, 0),
        (0.75, 3, 1),
        (0.0, 0, 0),  # at least one confirmation, whatever the fraction
        (0.0, 1, 1),
    ],
)
def test_the_next_stage_opens_at_the_success_threshold(success_threshold: float, confirmed: int, stage: int) -> None:
    rollout = make_rollout(strategy=Strategy.STAGED, stages=(4, 8), success_threshold=success_threshold)
    rows = with_states(make_rows(8, (4, 8)), dict.fromkeys(range(confirmed), CONF))
    step = plan(rollout, rows, online(rows), T0 + 1)
    assert step.rollout.current_stage == stage
    offered_stages = {step.changed[d].stage for d in step.offer}
    assert offered_stages == ({0, 1} if stage == 1 and confirmed < 4 else {stage})
    if stage:
        assert step.rollout.updated_at == T0 + 1
        assert step.notes == [f"stage 2 of 2 opened ({confirmed} confirmed so far)"]


def test_several_stages_open_in_one_tick_when_their_thresholds_are_met() -> None:
    rollout = make_rollout(strategy=Strategy.STAGED, stages=(4, 8, 12), success_threshold=0.25)
    rows = with_states(make_rows(12, (4, 8, 12)), {0: CONF, 1: CONF, 2: CONF})
    step = plan(rollout, rows, online(rows), T0)
    assert step.rollout.current_stage == 2
    assert len(step.notes) == 2


def test_a_stage_whose_devices_are_all_terminal_does_not_stall_the_rollout() -> None:
    """A device that left the product (skipped) cannot confirm: it does not hold the stage back."""
    rollout = make_rollout(strategy=Strategy.STAGED, stages=(4, 8), error_threshold=0.5)
    rows = with_states(make_rows(8, (4, 8)), {0: SKIP, 1: CONF, 2: CONF, 3: CONF})
    step = plan(rollout, rows, online(rows), T0)
    assert step.rollout.state is RolloutState.RUNNING
    assert step.rollout.current_stage == 1 and step.offer


def test_a_finished_stage_below_the_success_threshold_pauses_and_resume_goes_on() -> None:
    """With success_threshold 1.0 one failure below the error threshold can never be made good by
    waiting: the rollout pauses and says why; resuming accepts the failure and opens the next stage."""
    rollout = make_rollout(strategy=Strategy.STAGED, stages=(4, 8), error_threshold=0.5)
    rows = with_states(make_rows(8, (4, 8)), {0: FAIL, 1: CONF, 2: CONF, 3: CONF})
    step = plan(rollout, rows, online(rows), T0)
    assert step.rollout.state is RolloutState.PAUSED and "success threshold" in step.rollout.state_reason
    assert not step.offer
    resumed = resume(step.rollout, rows, "resume by user:alice", T0 + 1)
    step = plan(resumed, rows, online(rows), T0 + 2)
    assert step.rollout.state is RolloutState.RUNNING and step.rollout.current_stage == 1 and step.offer


# ---------------------------------------------------------------------- the error threshold


@pytest.mark.parametrize(
    ("strategy", "failed", "error_threshold", "fires"),
    [
        (Strategy.STAGED, 1, 0.25, True),  # 1 of the 4 open
        (Strategy.STAGED, 1, 0.5, False),
        (Strategy.STAGED, 2, 0.5, True),
        (Strategy.ALL, 1, 0.25, False),  # 1 of 8: the whole fleet is open
        (Strategy.ALL, 2, 0.25, True),
        (Strategy.ALL, 1, 0.01, True),  # at least one failure fires
        (Strategy.ALL, 0, 0.01, False),
    ],
)
def test_the_error_threshold_counts_the_open_stages(
    strategy: Strategy, failed: int, error_threshold: float, fires: bool
) -> None:
    stages = (4, 8) if strategy is Strategy.STAGED else ()
    rollout = make_rollout(strategy=strategy, stages=stages, error_threshold=error_threshold)
    rows = with_states(make_rows(8, stages), dict.fromkeys(range(failed), FAIL))
    step = plan(rollout, rows, online(rows), T0)
    assert (step.rollout.state is RolloutState.PAUSED) is fires
    assert step.rollout.error_action_fired is fires
    assert bool(step.offer) is not fires


def test_pause_action_stops_offers_and_leaves_rows() -> None:
    rollout = make_rollout(error_threshold=0.25, error_action=ErrorAction.PAUSE)
    rows = with_states(make_rows(4), {0: FAIL, 1: DL})
    step = plan(rollout, rows, online(rows), T0)
    assert step.rollout.state is RolloutState.PAUSED and step.rollout.error_action_fired
    assert step.rollout.state_reason == "error threshold reached: 1 of 4 device(s) failed"
    assert step.changed == {} and step.offer == [] and step.abort == []
    assert step.notes == ["paused: error threshold reached: 1 of 4 device(s) failed"]


def test_abort_action_skips_what_is_not_updated() -> None:
    rollout = make_rollout(error_threshold=0.2, error_action=ErrorAction.ABORT)
    rows = with_states(make_rows(5), {0: FAIL, 1: DL, 2: CONF, 3: INS})
    step = plan(rollout, rows, online(rows), T0)
    assert step.rollout.state is RolloutState.ABORTED and step.rollout.finished_at == T0
    assert step.rollout.error_action_fired
    assert states(apply(rows, step)) == [FAIL, SKIP, CONF, INS, SKIP]
    assert step.abort == [dev(1)] and step.offer == []
    assert not step.release and not step.clear_assignments


def test_rollback_action_starts_rolling_back() -> None:
    rollout = make_rollout(error_threshold=0.2, error_action=ErrorAction.ROLLBACK)
    rows = with_states(make_rows(5), {0: FAIL, 1: DL, 2: CONF, 3: INS})
    step = plan(rollout, rows, online(rows), T0)
    assert step.rollout.state is RolloutState.ROLLING_BACK and step.rollout.finished_at is None
    after = apply(rows, step)
    assert states(after) == [FAIL, SKIP, PEND, PEND, SKIP]
    assert [r.phase for r in after] == [Phase.UPDATE, Phase.UPDATE, Phase.ROLLBACK, Phase.ROLLBACK, Phase.UPDATE]
    assert step.abort == [dev(1)] and step.offer == []  # offers come at the next tick


def test_resume_forgives_the_failures_seen_so_far() -> None:
    rollout = make_rollout(error_threshold=0.25)
    rows = with_states(make_rows(8), {0: FAIL, 1: FAIL})
    paused = plan(rollout, rows, online(rows), T0).rollout
    assert paused.state is RolloutState.PAUSED
    resumed = resume(paused, rows, "resume by admin", T0 + 1)
    assert resumed.state is RolloutState.RUNNING and resumed.failures_forgiven == 2
    again = plan(resumed, rows, online(rows), T0 + 2)
    assert again.rollout.state is RolloutState.RUNNING and again.offer  # no immediate re-fire
    # Two more failures: 2 beyond those forgiven, of 8 open: fires again.
    worse = with_states(rows, {2: FAIL, 3: FAIL})
    assert plan(resumed, worse, online(worse), T0 + 3).rollout.state is RolloutState.PAUSED
    one_more = with_states(rows, {2: FAIL})
    assert plan(resumed, one_more, online(one_more), T0 + 3).rollout.state is RolloutState.RUNNING


def test_pause_and_resume_are_plain_state_changes() -> None:
    rollout = make_rollout()
    paused = pause(rollout, "pause by admin", T0 + 1)
    assert (paused.state, paused.state_reason, paused.updated_at) == (RolloutState.PAUSED, "pause by admin", T0 + 1)
    resumed = resume(paused, make_rows(2), "resume by admin", T0 + 2)
    assert resumed.state is RolloutState.RUNNING and resumed.failures_forgiven == 0


# ---------------------------------------------------------------------- timeouts and retries


@pytest.mark.parametrize(
    ("state", "age", "retries", "attempts", "expected", "reason"),
    [
        (OFF, 599, 2, 0, OFF, None),
        (OFF, 600, 2, 0, PEND, "attempt 1 failed: not installed within 600 s of the offer"),
        (DL, 700, 2, 1, PEND, "attempt 2 failed: not installed within 600 s of the offer"),
        (INS, 600, 2, 0, PEND, "attempt 1 failed: did not come back running it within 600 s of the offer"),
        (DL, 600, 2, 2, FAIL, "not installed within 600 s of the offer (attempt 3 of 3)"),
        (OFF, 600, 0, 0, FAIL, "not installed within 600 s of the offer (attempt 1 of 1)"),
    ],
)
def test_device_timeouts_retry_then_fail(
    state: DeviceState, age: float, retries: int, attempts: int, expected: DeviceState, reason: str | None
) -> None:
    rollout = make_rollout(retries=retries, retry_delay=5.0, device_timeout=600.0)
    rows = with_states(make_rows(1), {0: state}, attempts=attempts)
    now = T0 + age
    step = plan(rollout, rows, {}, now)  # offline: nothing is offered again at once
    row = step.changed.get(dev(0), rows[0])
    assert row.state is expected
    if reason is not None:
        assert row.reason == reason and row.offered_at is None
        # An installed image stays the device's target (it may just be slow to reboot); else none is held.
        assert row.assigned_version == (rows[0].assigned_version if state is INS else None)
        assert row.attempts == attempts + (expected is PEND)
    if expected is PEND:
        assert row.next_try_at == now + 5.0
        # Offered again once the delay has passed and the device is online.
        later = plan(rollout, [row], online([row]), now + 5.0)
        assert later.offer == [dev(0)] and later.changed[dev(0)].attempts == attempts + 1


def test_timeouts_apply_while_paused() -> None:
    rows = with_states(make_rows(1), {0: DL})
    step = plan(make_rollout(state=RolloutState.PAUSED), rows, online(rows), T0 + 600)
    assert step.changed[dev(0)].state is PEND and step.offer == []


# ---------------------------------------------------------------------- device reports


@pytest.mark.parametrize(
    ("state", "report", "detail", "attempts", "expected", "expected_attempts"),
    [
        (OFF, Report.ACCEPTED, "from offset 0", 0, DL, 0),
        (DL, Report.ACCEPTED, "from offset 512", 0, DL, 0),  # a resumed transfer
        (OFF, Report.INSTALLED, "", 0, INS, 0),
        (DL, Report.INSTALLED, "", 0, INS, 0),
        (INS, Report.CONFIRMED, "", 0, CONF, 0),
        (DL, Report.CONFIRMED, "", 0, CONF, 0),  # reconnected running it before we heard "installed"
        (OFF, Report.CONFIRMED, "", 0, CONF, 0),
        (INS, Report.CAME_BACK_OLD, "still on 1", 0, FAIL, 0),  # final: not re-flashed forever
        (OFF, Report.REFUSED, "no", 0, FAIL, 0),  # final even with retries left
        (DL, Report.REFUSED, "no", 0, FAIL, 0),
        (OFF, Report.DEFERRED, "30", 0, PEND, 0),  # not an attempt
        (DL, Report.DEFERRED, "1", 1, PEND, 1),
        (DL, Report.INSTALL_FAILED, "hash mismatch", 0, PEND, 1),
        (OFF, Report.INSTALL_FAILED, "bad chunk", 1, PEND, 2),
        (DL, Report.INSTALL_FAILED, "hash mismatch", 2, FAIL, 2),
        (OFF, Report.INCOMPATIBLE, "built for platform 12", 0, SKIP, 0),  # final, and not a failure
        (PEND, Report.INCOMPATIBLE, "", 0, None, 0),
        (INS, Report.INCOMPATIBLE, "", 0, None, 0),
        # Reports that do not fit the row's state are ignored.
        (PEND, Report.ACCEPTED, "", 0, None, 0),
        (PEND, Report.CONFIRMED, "", 0, None, 0),
        (PEND, Report.INSTALL_FAILED, "", 0, None, 0),
        (INS, Report.ACCEPTED, "", 0, None, 0),
        (INS, Report.INSTALL_FAILED, "", 0, None, 0),
        (INS, Report.REFUSED, "", 0, None, 0),
        (DL, Report.CAME_BACK_OLD, "", 0, None, 0),
        (CONF, Report.INSTALLED, "", 0, None, 0),
        (CONF, Report.CONFIRMED, "", 0, None, 0),
        (FAIL, Report.ACCEPTED, "", 0, None, 0),
        (SKIP, Report.CONFIRMED, "", 0, None, 0),
    ],
)
def test_on_report(
    state: DeviceState,
    report: Report,
    detail: str,
    attempts: int,
    expected: DeviceState | None,
    expected_attempts: int,
) -> None:
    rollout = make_rollout(retries=2, retry_delay=5.0)
    row = with_states(make_rows(1), {0: state}, attempts=attempts)[0]
    new = on_report(rollout, row, report, VERSION, detail, T0 + 10)
    if expected is None:
        assert new is None
        return
    assert new is not None
    assert new.state is expected and new.attempts == expected_attempts and new.updated_at == T0 + 10
    assert new.phase is Phase.UPDATE and new.from_version == OLD
    if expected in (FAIL, PEND):
        assert new.assigned_version is None and new.offered_at is None
    if expected is CONF:
        assert new.assigned_version == VERSION and new.reason == f"running version {VERSION}"
    if report is Report.REFUSED:
        assert new.reason == "refused by the device: no"
    if report is Report.INCOMPATIBLE:
        assert new.reason == f"not offered: {detail}" and new.assigned_version is None
    if report is Report.DEFERRED:
        assert new.next_try_at == T0 + 10 + max(5.0, float(detail))
        assert new.reason == f"deferred by the device for {detail} s"
    if report is Report.INSTALL_FAILED and expected is PEND:
        assert new.next_try_at == T0 + 15 and new.reason == f"attempt {attempts + 1} failed: {detail}"


@pytest.mark.parametrize("report", list(Report))
@pytest.mark.parametrize("state", [OFF, DL, INS])
def test_reports_for_another_version_do_not_concern_the_row(report: Report, state: DeviceState) -> None:
    row = with_states(make_rows(1), {0: state})[0]
    assert on_report(make_rollout(), row, report, VERSION + 1, "", T0) is None
    assert on_report(make_rollout(), row, report, OLD, "", T0) is None  # the update phase wants VERSION


@pytest.mark.parametrize("report", list(Report))
def test_reports_to_a_finished_rollout_change_nothing(report: Report) -> None:
    for state in (RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.ROLLED_BACK):
        row = with_states(make_rows(1), {0: DL})[0]
        assert on_report(make_rollout(state=state), row, report, VERSION, "", T0) is None


def test_reports_apply_while_paused() -> None:
    row = with_states(make_rows(1), {0: DL})[0]
    new = on_report(make_rollout(state=RolloutState.PAUSED), row, Report.INSTALLED, VERSION, "", T0)
    assert new is not None and new.state is INS


def test_a_rollback_row_takes_reports_for_its_earlier_version() -> None:
    rollout = make_rollout(state=RolloutState.ROLLING_BACK)
    row = replace(with_states(make_rows(1), {0: INS})[0], phase=Phase.ROLLBACK, assigned_version=OLD)
    assert target_version(rollout, row) == OLD
    assert on_report(rollout, row, Report.CONFIRMED, VERSION, "", T0) is None
    back = on_report(rollout, row, Report.CONFIRMED, OLD, "", T0)
    assert back is not None and back.state is RB and back.assigned_version == OLD
    assert back.reason == f"running version {OLD}"


# ---------------------------------------------------------------------- abort and rollback


def mixed_rows() -> list[RolloutDevice]:
    rows = with_states(make_rows(7), {0: INS, 1: CONF, 2: OFF, 3: DL, 4: FAIL, 5: CONF})
    rows[5] = replace(rows[5], from_version=None)
    return rows  # 6 stays pending


def test_abort_skips_pending_and_in_flight_rows() -> None:
    rows = mixed_rows()
    step = abort(make_rollout(), rows, "abort by admin", T0)
    assert step.rollout.state is RolloutState.ABORTED and step.rollout.finished_at == T0
    after = apply(rows, step)
    assert states(after) == [INS, CONF, SKIP, SKIP, FAIL, CONF, SKIP]
    assert all(after[i].assigned_version is None for i in (2, 3, 6))
    assert after[1].assigned_version == VERSION  # updated devices stay on the version
    assert step.abort == [dev(2), dev(3)]
    assert step.notes == ["aborted: abort by admin"]


def test_rollback_conversion() -> None:
    rows = mixed_rows()
    step = rollback(make_rollout(), rows, "bad build", T0)
    assert step.rollout.state is RolloutState.ROLLING_BACK and step.rollout.state_reason == "bad build"
    after = apply(rows, step)
    assert states(after) == [PEND, PEND, SKIP, SKIP, FAIL, FAIL, SKIP]
    assert [r.phase for r in after[:2]] == [Phase.ROLLBACK, Phase.ROLLBACK]
    for r in after[:2]:
        assert r.attempts == 0 and r.offered_at is None and r.next_try_at == 0.0
        assert r.assigned_version == VERSION  # held until offered from_version
        assert r.reason == f"to be rolled back to version {OLD}"
    assert after[4] == rows[4]  # failed rows are untouched
    assert after[5].reason == "rollback: the version it ran before is unknown"
    assert step.abort == [dev(2), dev(3)]


def test_rolling_back_offers_the_earlier_version_then_finishes() -> None:
    rollout = make_rollout(error_threshold=0.2, error_action=ErrorAction.ROLLBACK, max_concurrent=1)
    rows = with_states(make_rows(5), {0: FAIL, 1: CONF, 2: CONF, 3: CONF})
    step = plan(rollout, rows, online(rows, running=VERSION), T0)
    rollout, rows = step.rollout, apply(rows, step)
    assert rollout.state is RolloutState.ROLLING_BACK
    views = online(rows, running=VERSION, but={dev(1): DeviceView(online=True, running=OLD)})
    step = plan(rollout, rows, views, T0 + 1)
    assert step.offer == [dev(2)]  # dev(1) already runs OLD and needs no slot; dev(3) waits for the one slot
    offered = step.changed[dev(2)]
    assert offered.state is OFF and offered.assigned_version == OLD and offered.reason == f"offered version {OLD}"
    assert step.changed[dev(1)].state is RB and step.changed[dev(1)].reason == f"already running version {OLD}"
    assert dev(3) not in step.changed
    rows = apply(rows, step)
    for i in (2, 3):
        if rows[i].state is PEND:
            step = plan(rollout, rows, views, T0 + 2)
            assert step.offer == [dev(i)]
            rows = apply(rows, step)
        for report in (Report.ACCEPTED, Report.INSTALLED, Report.CONFIRMED):
            new = on_report(rollout, rows[i], report, OLD, "", T0 + 3)
            assert new is not None
            rows[i] = new
        assert rows[i].state is RB
    step = plan(rollout, rows, views, T0 + 4)
    assert step.rollout.state is RolloutState.ROLLED_BACK and step.rollout.finished_at == T0 + 4
    assert step.rollout.state_reason == "3 device(s) back on their earlier version"
    assert step.clear_assignments and not step.release


def test_rolling_back_brings_late_rows_along() -> None:
    rollout = make_rollout(state=RolloutState.ROLLING_BACK)
    rows = with_states(make_rows(2), {0: CONF, 1: DL})  # reports that landed while the rollback was written
    step = plan(rollout, rows, {}, T0)
    after = apply(rows, step)
    assert (after[0].phase, after[0].state) == (Phase.ROLLBACK, PEND)
    assert after[1].state is SKIP and step.abort == [dev(1)]
    assert step.rollout.state is RolloutState.ROLLING_BACK


# ---------------------------------------------------------------------- completion


@pytest.mark.parametrize(
    ("target", "release"),
    [
        (RolloutTarget(product_default=True), True),
        (RolloutTarget(groups=("beta",)), True),
        (RolloutTarget(devices=(dev(0), dev(1), dev(2))), False),
    ],
)
def test_completion(target: RolloutTarget, release: bool) -> None:
    rollout = make_rollout(target=target, error_threshold=0.5)
    rows = with_states(make_rows(3), {0: CONF, 1: FAIL, 2: SKIP})
    step = plan(rollout, rows, online(rows), T0)
    assert step.rollout.state is RolloutState.COMPLETED and step.rollout.finished_at == T0
    assert step.rollout.state_reason == "1 confirmed, 1 failed, 1 skipped"
    assert step.release is release and step.clear_assignments is release


def test_not_complete_while_a_device_is_open() -> None:
    rows = with_states(make_rows(3), {0: CONF, 1: CONF, 2: INS})
    step = plan(make_rollout(), rows, {}, T0)
    assert step.rollout.state is RolloutState.RUNNING and not step.release


def test_the_last_confirmation_by_admission_completes_in_the_same_tick() -> None:
    rows = with_states(make_rows(2), {0: CONF})
    step = plan(make_rollout(), rows, online(rows, running=VERSION), T0)
    assert step.rollout.state is RolloutState.COMPLETED and step.release


@pytest.mark.parametrize("state", [RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.ROLLED_BACK])
def test_a_finished_rollout_plans_nothing(state: RolloutState) -> None:
    rollout = make_rollout(state=state)
    rows = with_states(make_rows(4), {1: DL, 2: INS})
    step = plan(rollout, rows, online(rows), T0 + 10_000)
    assert step.rollout == rollout and step.changed == {} and step.offer == [] and step.abort == []
    assert not step.release and not step.clear_assignments and step.notes == []


# ---------------------------------------------------------------------- exponential


def exponential(**changes: Any) -> Rollout:
    base: dict[str, Any] = {"strategy": Strategy.EXPONENTIAL, "rate_start": 6.0, "rate_factor": 3.0}
    return make_rollout(**{"rate_increase_every": 2, "max_concurrent": 50, **base, **changes})


@pytest.mark.parametrize(
    ("elapsed", "confirmed", "rate_budget", "offered", "left"),
    [
        (10.0, 0, 0.0, 1, 0.0),  # 6 a minute: one every 10 s
        (5.0, 0, 0.0, 0, 0.5),  # half an offer is kept for the next tick
        (5.0, 0, 0.5, 1, 0.0),
        (30.0, 0, 0.0, 3, 0.0),
        (25.0, 0, 0.0, 2, 0.5),
        (10.0, 1, 0.0, 1, 0.0),  # below rate_increase_every: no growth yet
        (10.0, 2, 0.0, 3, 0.0),  # 2 confirmed: 18 a minute
        (10.0, 4, 0.0, 9, 0.0),  # 4 confirmed: 54 a minute
        (10.0, 6, 0.0, 10, 0.0),  # 162 a minute would be 27, capped at max_concurrent
        (3600.0, 0, 0.0, 10, 0.0),
        (0.0, 0, 100.0, 10, 0.0),  # a stored budget is capped too
        (-5.0, 0, 0.0, 0, 0.0),  # a clock that went back earns nothing
    ],
)
def test_exponential_rate_budget(elapsed: float, confirmed: int, rate_budget: float, offered: int, left: float) -> None:
    rollout = exponential(rate_budget=rate_budget, max_concurrent=10)
    rows = with_states(make_rows(20), dict.fromkeys(range(confirmed), CONF))
    step = plan(rollout, rows, online(rows), T0 + elapsed)
    assert len(step.offer) == offered
    assert step.rollout.rate_budget == pytest.approx(left)
    assert step.rollout.updated_at == T0 + elapsed


def test_exponential_budget_with_busy_slots_keeps_what_is_left() -> None:
    rollout = exponential(max_concurrent=5, device_timeout=7 * 86400.0)
    rows = with_states(make_rows(10), {0: DL, 1: OFF})
    step = plan(rollout, rows, online(rows), T0 + 3600)
    assert len(step.offer) == 3  # two slots are busy
    assert step.rollout.rate_budget == pytest.approx(2.0)


def test_exponential_rollouts_have_one_stage_and_offer_in_order() -> None:
    rollout = exponential()
    rows = make_rows(4)
    step = plan(rollout, rows, online(rows), T0 + 20)
    assert step.offer == [dev(0), dev(1)] and step.rollout.current_stage == 0


def test_exponential_error_threshold_counts_devices_opened_so_far() -> None:
    rollout = exponential(error_threshold=0.5)
    rows = with_states(make_rows(20), {0: FAIL, 1: CONF})  # 1 of 2 opened failed; 18 never offered
    step = plan(rollout, rows, online(rows), T0 + 10)
    assert step.rollout.state is RolloutState.PAUSED
    assert step.rollout.state_reason == "error threshold reached: 1 of 2 device(s) failed"


# ---------------------------------------------------------------------- Hypothesis


ROLLOUT_STATES = [RolloutState.RUNNING, RolloutState.PAUSED, RolloutState.ROLLING_BACK, *[
    s for s in RolloutState if s.finished
]]  # fmt: skip


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Rollout, list[RolloutDevice]]:
    n = draw(st.integers(1, 8))
    strategy = draw(st.sampled_from(list(Strategy)))
    stages: tuple[int, ...] = ()
    if strategy is Strategy.STAGED:
        ends = sorted(draw(st.sets(st.integers(1, n), max_size=3)) | {n})
        stages = tuple(ends)
    state = draw(st.sampled_from(ROLLOUT_STATES))
    rollout = make_rollout(
        state=state,
        strategy=strategy,
        stages=stages,
        current_stage=draw(st.integers(0, max(0, len(stages) - 1))),
        rate_budget=draw(st.floats(0, 5)),
        failures_forgiven=draw(st.integers(0, 2)),
        max_concurrent=draw(st.integers(1, 4)),
        retries=draw(st.integers(0, 2)),
        device_timeout=draw(st.sampled_from([10.0, 60.0])),
        retry_delay=draw(st.sampled_from([0.0, 5.0])),
        success_threshold=draw(st.sampled_from([0.0, 0.5, 1.0])),
        error_threshold=draw(st.sampled_from([0.1, 0.5, 1.0])),
        error_action=draw(st.sampled_from(list(ErrorAction))),
        rate_start=draw(st.sampled_from([6.0, 60.0, 600.0])),
        rate_factor=draw(st.sampled_from([1.0, 2.0])),
        rate_increase_every=draw(st.integers(1, 3)),
        target=draw(st.sampled_from([RolloutTarget(product_default=True), RolloutTarget(devices=("x",))])),
    )
    rows = []
    for row in make_rows(n, stages):
        phase = Phase.UPDATE
        if state is RolloutState.ROLLING_BACK and draw(st.booleans()):
            phase = Phase.ROLLBACK
            row_state = draw(st.sampled_from([PEND, OFF, DL, INS, FAIL, RB]))
        else:
            row_state = draw(st.sampled_from([PEND, OFF, DL, INS, CONF, FAIL, SKIP]))
        flying = row_state.in_flight or row_state is INS
        from_version = OLD if phase is Phase.ROLLBACK or flying else draw(st.sampled_from([None, OLD]))
        rows.append(
            replace(
                row,
                state=row_state,
                phase=phase,
                attempts=draw(st.integers(0, 2)),
                from_version=from_version,
                offered_at=T0 - draw(st.sampled_from([0.0, 30.0])) if flying else None,
                next_try_at=T0 + draw(st.sampled_from([0.0, 3.0])),
            )
        )
    return rollout, rows


views_st = st.builds(
    DeviceView,
    online=st.booleans(),
    member=st.sampled_from([True, True, True, False]),
    running=st.sampled_from([None, OLD, VERSION]),
)
actions_st = st.lists(
    st.one_of(
        st.tuples(st.just("plan"), st.sampled_from([0.0, 1.0, 5.0, 30.0]), st.lists(views_st, min_size=8, max_size=8)),
        st.tuples(
            st.just("report"),
            st.integers(0, 7),
            st.sampled_from(list(Report)),
            st.sampled_from(["target", "other"]),
        ),
        st.tuples(st.just("operator"), st.sampled_from(["pause", "resume", "abort"])),
    ),
    max_size=25,
)

UNCHANGEABLE = (FAIL, SKIP, RB)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds(), actions=actions_st)
def test_random_worlds_keep_the_invariants(world: tuple[Rollout, list[RolloutDevice]], actions: list[Any]) -> None:
    rollout, rows = world
    now = T0
    limit = rollout.settings.max_concurrent
    for action in actions:
        if action[0] == "plan":
            _, dt, view_list = action
            now += dt
            views = {r.device_id: view_list[r.position] for r in rows}
            before = {r.device_id: r for r in rows}
            step = plan(rollout, rows, views, now)
            if rollout.state.finished:
                assert step.rollout == rollout and not step.changed and not step.offer and not step.abort
                continue
            after = apply(rows, step)
            for new in after:
                old = before[new.device_id]
                if old.state in UNCHANGEABLE:
                    assert new == old, (old, new)
                elif old.state is CONF:
                    # The one way out: a rollback gives it back the version it ran before (or fails
                    # it when that version is unknown).
                    rolling = step.rollout.state in (RolloutState.ROLLING_BACK, RolloutState.ROLLED_BACK)
                    back = new.phase is Phase.ROLLBACK and new.state in (PEND, OFF, FAIL, RB)
                    unknown = new.state is FAIL and old.from_version is None
                    assert new == old or (rolling and (back or unknown)), (old, new)
            timeout = rollout.settings.device_timeout
            for device_id in step.offer:
                old, offered = before[device_id], step.changed[device_id]
                assert offered.state is OFF and offered.offered_at == now
                # Only a row that left in-flight first is offered: it was pending, it timed out at this
                # tick (an attempt counted, offered again at once with retry_delay 0), or a rollback
                # takes back the version it installed.
                waited = old.state.in_flight or old.state is INS
                timed_out = waited and old.offered_at is not None and now - old.offered_at >= timeout
                assert not old.state.in_flight or timed_out, "offered again while an offer is in flight"
                if timed_out:
                    assert offered.attempts == old.attempts + 1 and rollout.settings.retry_delay == 0
                else:
                    rolled = old.phase is Phase.UPDATE and offered.phase is Phase.ROLLBACK
                    assert old.state is PEND or (old.state in (INS, CONF) and rolled), old
            assert len(set(step.offer)) == len(step.offer)
            if step.offer:
                assert sum(r.state.in_flight for r in after) <= limit
            assert set(step.abort) <= {d for d, r in before.items() if r.state.in_flight}
            if step.rollout.state.finished:
                assert all(r.state.terminal for r in after) or step.rollout.state is RolloutState.ABORTED
            rollout, rows = step.rollout, after
        elif action[0] == "report":
            _, index, report, which = action
            row = rows[index % len(rows)]
            version = target_version(rollout, row) if which == "target" else 99
            reported = on_report(rollout, row, report, version or 99, "3", now)
            settling = row.state is INS and report in (Report.CONFIRMED, Report.CAME_BACK_OLD)
            if which == "other" or (rollout.state.finished and not settling):
                assert reported is None  # a finished rollout hears only how installs it left ended
            if reported is not None:
                assert reported.device_id == row.device_id and reported.phase is row.phase
                # The one way out of a terminal state: a device that timed out comes back running the version.
                late = row.state is FAIL and row.attempts > 0 and report is Report.CONFIRMED
                assert late or not (row.state in UNCHANGEABLE or row.state is CONF), (row, report)
                rows = [reported if r.device_id == row.device_id else r for r in rows]
        else:
            kind = action[1]
            if rollout.state.finished:
                continue
            if kind == "pause" and rollout.state is RolloutState.RUNNING:
                rollout = pause(rollout, "pause", now)
            elif kind == "resume" and rollout.state is RolloutState.PAUSED:
                rollout = resume(rollout, rows, "resume", now)
            elif kind == "abort":
                step = abort(rollout, rows, "abort", now)
                assert set(step.abort) == {r.device_id for r in rows if r.state.in_flight}
                rollout, rows = step.rollout, apply(rows, step)
                assert not any(r.state.in_flight or r.state is PEND for r in rows)
