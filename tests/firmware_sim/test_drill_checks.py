"""The drill's expectations: each fault's end state per expected outcome, both sides agreeing."""

from __future__ import annotations

from typing import Any

import pytest

from firmware_sim.drill_checks import (
    DeviceFacts,
    Expectation,
    allowed_states,
    device_checks,
    device_problem,
    rollout_checks,
)

SIZE = 1000
COMPLETED = Expectation("completed", old=1, new=2, retries=2, image_size=SIZE)
ROLLED_BACK = Expectation("rolled_back", old=1, new=2, retries=2, image_size=SIZE, on_error="rollback")


def facts(fault: str = "healthy", running: int = 2, **more: Any) -> DeviceFacts:
    return DeviceFacts("d" * 24, fault, late=False, running=running, connected=True, first_status="ok", **more)


def row(state: str, reason: str = "") -> dict[str, Any]:
    return {"id": "d" * 24, "state": state, "reason": reason, "phase": "update", "attempts": 0}


@pytest.mark.parametrize(
    ("fault", "expect", "retries", "states"),
    [
        ("healthy", "completed", 2, {"confirmed"}),
        ("drop", "completed", 2, {"confirmed"}),
        ("corrupt", "completed", 2, {"confirmed"}),
        ("corrupt", "completed", 0, {"failed"}),
        ("refuse", "completed", 2, {"failed"}),
        ("bootfail", "completed", 2, {"failed"}),
        ("healthy", "rolled_back", 2, {"rolled_back", "skipped"}),
        ("bootfail", "rolled_back", 2, {"failed", "skipped"}),
        ("healthy", "aborted", 2, {"confirmed", "skipped", "installed"}),
        ("refuse", "aborted", 2, {"failed", "skipped"}),
        ("drop", "paused", 2, {"confirmed", "pending", "offered", "downloading", "installed"}),
        ("refuse", "paused", 2, {"failed", "pending", "offered"}),
    ],
)
def test_allowed_states(fault: str, expect: str, retries: int, states: set[str]) -> None:
    assert allowed_states(fault, Expectation(expect, 1, 2, retries, SIZE)) == states


def test_a_healthy_device_must_be_confirmed_and_run_the_new_version() -> None:
    assert device_problem(facts(), row("confirmed"), COMPLETED) is None
    assert "expected confirmed" in str(device_problem(facts(), row("failed", "x"), COMPLETED))
    assert "runs version 1" in str(device_problem(facts(running=1), row("confirmed"), COMPLETED))
    assert device_problem(facts(), None, COMPLETED) == "not in the rollout"


def test_a_boot_failure_must_say_it_came_back_on_the_old_version() -> None:
    reason = "came back running version 1, not 2: the update did not take"
    assert device_problem(facts("bootfail", running=1), row("failed", reason), COMPLETED) is None
    problem = device_problem(facts("bootfail", running=1), row("failed", "timed out"), COMPLETED)
    assert problem is not None and "old version" in problem
    assert "runs version 2" in str(device_problem(facts("bootfail", running=2), row("failed", reason), COMPLETED))


def test_a_refusal_must_be_failed_as_refused() -> None:
    assert device_problem(facts("refuse", running=1), row("failed", "refused by the device: other"), COMPLETED) is None
    assert "refused" in str(device_problem(facts("refuse", running=1), row("failed", "timeout"), COMPLETED))


def test_a_drop_must_have_happened_and_been_resumed() -> None:
    resumed = facts("drop", drops=1, bytes_by_version={2: SIZE + 100}, accept_offsets=[(2, 0), (2, 600)])
    assert device_problem(resumed, row("confirmed"), COMPLETED) is None
    restarted = facts("drop", drops=1, bytes_by_version={2: 2 * SIZE}, accept_offsets=[(2, 0), (2, 600)])
    assert "restarted rather than resumed" in str(device_problem(restarted, row("confirmed"), COMPLETED))
    from_zero = facts("drop", drops=1, bytes_by_version={2: SIZE + 500}, accept_offsets=[(2, 0), (2, 0)])
    assert "never resumed" in str(device_problem(from_zero, row("confirmed"), COMPLETED))
    never = facts("drop", bytes_by_version={2: SIZE})
    assert "without ever dropping" in str(device_problem(never, row("confirmed"), COMPLETED))


def test_a_corruption_must_have_been_reported_before_the_retry_succeeded() -> None:
    fired = facts("corrupt", completions=[(2, "hash_mismatch"), (2, "verified")])
    assert device_problem(fired, row("confirmed"), COMPLETED) is None
    silent = facts("corrupt", completions=[(2, "verified")])
    assert "did not fire" in str(device_problem(silent, row("confirmed"), COMPLETED))


def test_after_a_rollback_every_device_is_back_on_the_old_version() -> None:
    assert device_problem(facts(running=1), row("rolled_back"), ROLLED_BACK) is None
    assert device_problem(facts(running=1), row("skipped"), ROLLED_BACK) is None
    assert "runs version 2" in str(device_problem(facts(running=2), row("rolled_back"), ROLLED_BACK))
    assert "expected" in str(device_problem(facts(running=2), row("confirmed"), ROLLED_BACK))


def test_device_checks_group_by_fault_and_name_the_devices() -> None:
    good, bad = facts(), DeviceFacts("e" * 24, "healthy", False, 1, True, "ok")
    checks = device_checks([good, bad], {good.device_id: row("confirmed"), bad.device_id: row("failed")}, COMPLETED)
    assert [(c.name, c.ok) for c in checks] == [("devices: healthy", False)]
    assert checks[0].detail.startswith("1/2 ended confirmed; eeee")


@pytest.mark.parametrize(
    ("expect", "on_error", "fires"),
    [
        ("completed", "rollback", False),
        ("rolled_back", "rollback", True),
        ("aborted", "abort", True),
        ("paused", "pause", True),
        ("paused", "rollback", False),  # then the pause is the success threshold's
    ],
)
def test_when_the_error_action_must_fire(expect: str, on_error: str, fires: bool) -> None:
    assert Expectation(expect, 1, 2, 2, SIZE, on_error=on_error).action_fires is fires


def test_rollout_checks_compare_the_end_state_and_the_error_action() -> None:
    fleet = [facts(), DeviceFacts("e" * 24, "healthy", True, 2, True, "ok")]
    done = {"state": "completed", "state_reason": "all done", "error_action_fired": False}
    assert all(c.ok for c in rollout_checks(done, COMPLETED, fleet, restarts=0, timed_out=False))
    checks = {c.name: c for c in rollout_checks(done, ROLLED_BACK, fleet, restarts=0, timed_out=False)}
    assert not checks["rollout final state"].ok and not checks["error action"].ok
    timed_out = {c.name: c.ok for c in rollout_checks(done, COMPLETED, fleet, restarts=0, timed_out=True)}
    assert timed_out["rollout final state"] is False
    restart = Expectation("completed", 1, 2, 2, SIZE, restart_at=0.3)
    assert {c.name: c.ok for c in rollout_checks(done, restart, fleet, 0, False)}["server restarted"] is False
    never = [DeviceFacts("f" * 24, "healthy", False, 1, False, None)]
    assert {c.name: c.ok for c in rollout_checks(None, COMPLETED, never, 0, False)} == {
        "rollout final state": False, "error action": True, "fleet connected": False,
    }  # fmt: skip
