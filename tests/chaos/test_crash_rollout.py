"""`fleetsim chaos crash-rollout`, bounded: a rollout through kill -9s still completes."""

from __future__ import annotations

from firmware_sim.chaos.crash_rollout import kill_points

from .support import chaos, failed_checks


def test_kill_points_spread_evenly_and_never_at_the_end() -> None:
    assert kill_points(3) == (0.25, 0.5, 0.75)
    assert kill_points(0) == ()


def test_a_rollout_completes_through_kill_9s() -> None:
    result, report = chaos("crash-rollout", "--devices", "24", "--kills", "2", "--size", "32768", limit=120)
    assert result.returncode == 0, failed_checks(report)
    assert report["rollout_state"] == "completed"
    assert len(report["kills_s"]) == 2
    assert report["confirmed"] == report["running_new"] == 24
