"""`fleetsim drill` as a user runs it: a real server subprocess, a faulty fleet, a rollout, checks.

Small versions of the README's drills (tens of devices, small images, short retry delays) so the
three together stay well under a minute; the 1000-device drill is marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FLEETSIM = [sys.executable, "-m", "firmware_sim.cli"]


def drill(tmp_path: Path, *args: str, limit: float = 150) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "report.json"
    result = subprocess.run(
        [*FLEETSIM, "drill", "--json", str(out), "--plot", str(tmp_path / "drill.png"), "--retry-delay", "0.5", *args],
        capture_output=True,
        text=True,
        timeout=limit,
    )
    assert out.exists(), result.stdout + result.stderr
    report: dict[str, Any] = json.loads(out.read_text())
    return result, report


def outcome(report: dict[str, Any], fault: str) -> dict[str, int]:
    table: dict[str, dict[str, int]] = report["outcomes"]
    return table.get(fault, {})


def test_a_clean_rollout_with_every_kind_of_fault(tmp_path: Path) -> None:
    result, report = drill(
        tmp_path, "--devices", "40", "--mix", "drop=3,corrupt=2,refuse=1,bootfail=1,late=3", "--size", "300000",
        "--late-window", "2", "--timeout", "60",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert "drill passed" in result.stdout
    assert report["rollout"]["state"] == "completed" and not report["rollout"]["error_action_fired"]
    assert outcome(report, "healthy") == {"confirmed": 33}
    assert outcome(report, "drop") == {"confirmed": 3} and outcome(report, "corrupt") == {"confirmed": 2}
    assert outcome(report, "refuse") == {"failed": 1} and outcome(report, "bootfail") == {"failed": 1}
    assert (tmp_path / "drill.png").read_bytes()[:4] == b"\x89PNG"
    assert report["series"] and report["series"][-1]["state"] == "completed"


def test_a_canary_that_trips_the_error_threshold_rolls_back(tmp_path: Path) -> None:
    result, report = drill(
        tmp_path, "--devices", "40", "--mix", "bootfail=30%", "--strategy", "staged", "--stages", "25%,100%",
        "--error-threshold", "0.2", "--on-error", "rollback", "--expect", "rolled_back", "--timeout", "60",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    rollout = report["rollout"]
    assert rollout["state"] == "rolled_back" and rollout["error_action_fired"]
    assert all(d["running_version"] == 1 for d in report["devices"])  # the whole fleet is back on v1
    assert set(outcome(report, "healthy")) <= {"rolled_back", "skipped"}


def test_a_rollout_survives_a_server_restart(tmp_path: Path) -> None:
    result, report = drill(
        tmp_path, "--devices", "60", "--mix", "drop=2,late=2", "--size", "300000", "--max-concurrent", "10",
        "--restart-at", "0.3", "--late-window", "2", "--device-timeout", "30", "--timeout", "90",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert len(report["server_restarts_s"]) == 1
    assert report["rollout"]["state"] == "completed"
    assert outcome(report, "healthy") == {"confirmed": 58} and outcome(report, "drop") == {"confirmed": 2}


def test_a_drill_whose_expectation_is_wrong_exits_1_and_says_why(tmp_path: Path) -> None:
    result, report = drill(tmp_path, "--devices", "5", "--mix", "none", "--expect", "rolled_back", "--timeout", "30")
    assert result.returncode == 1
    assert not report["passed"] and "drill FAILED" in result.stdout
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert {"rollout final state", "error action"} <= failed


@pytest.mark.slow
def test_the_readme_drill_of_1000_devices(tmp_path: Path) -> None:
    result, report = drill(tmp_path, "--devices", "1000", "--timeout", "300", limit=400)
    assert result.returncode == 0, result.stdout
    assert report["rollout"]["counts"]["confirmed"] == 980  # all but the 1% refusing and 1% boot failures
