"""`fleetgate events tail` as a user runs it, against a real server and a real simulated device."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .cli_support import FLEETSIM, Served, run

P = 4901


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_events_tail_shows_what_a_privileged_device_published(tmp_path: Path, served: Served) -> None:
    ids = tmp_path / "ids"
    ok(run(FLEETSIM, "keygen", "--count", 1, "--out", ids))
    device = (ids / "devices.csv").read_text().splitlines()[-1].split(",")[0]
    ok(served.cli("device", "import", ids / "devices.csv"))
    ok(served.cli("product", "create", "Lamp", "--id", P))
    ok(served.cli("product", "add-device", P, device))
    report = served.fleet(ids, "--product", P, "--publish", 3)
    assert report["summary"]["events_acked"] == 3, report

    lines = ok(served.cli("events", "tail", P, "--after", 0, "--count", 3, "--json")).splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["coreid"] for e in events] == [device] * 3 and all(e["productID"] == P for e in events)
    assert sorted(e["event"] for e in events) == ["sim/event-0", "sim/event-1", "sim/event-2"]
    text = ok(served.cli("events", "tail", P, "--after", 0, "--count", 1, "--prefix", "sim/event-2"))
    assert device in text and "sim/event-2" in text
    missing = served.cli("events", "tail", 9999, "--count", 1)
    assert missing.returncode == 2 and "404" in missing.stderr and "Traceback" not in missing.stderr
