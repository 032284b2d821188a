"""Running `fleetsim chaos SCENARIO --json` as a user does: a subprocess, its one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

FLEETSIM = [sys.executable, "-m", "firmware_sim.cli"]


def chaos(scenario: str, *args: str, limit: float = 120) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = subprocess.run(
        [*FLEETSIM, "chaos", scenario, "--json", *args], capture_output=True, text=True, timeout=limit
    )
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    report: dict[str, Any] = json.loads(lines[-1])
    return result, report


def failed_checks(report: dict[str, Any]) -> list[str]:
    return [f"{c['name']}: {c['detail']}" for c in report["checks"] if not c["ok"]]
