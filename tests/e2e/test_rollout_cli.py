"""Rollouts as an operator types them: create, list, show, pause, resume, abort, each with --json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from firmware_sim import firmware

from .cli_support import Served

P = 4601
DEVICES = [f"{i:024x}" for i in range(1, 6)]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_rollout_commands(tmp_path: Path, served: Served) -> None:
    binary = tmp_path / "lamp-2.bin"
    binary.write_bytes(firmware.build(P, 2, 50_000))
    ok(served.cli("product", "create", "Lamp", "--id", P))
    ok(served.cli("firmware", "upload", P, binary))
    for device in DEVICES:
        ok(served.cli("product", "add-device", P, device))

    created = json.loads(ok(served.cli(
        "rollout", "create", P, 2, "--default", "--strategy", "staged", "--stages", "20%,60%", "--json",
    )))  # fmt: skip
    assert created["state"] == "running" and created["stages"] == [1, 3, 5] and created["counts"]["pending"] == 5
    rid = created["id"]

    # No device is online: all stay pending, and a second rollout of the product must wait.
    second = served.cli("rollout", "create", P, 2, "--default")
    assert second.returncode == 2 and "409" in second.stderr and f"rollout {rid}" in second.stderr
    bad = served.cli("rollout", "create", P, 2, "--default", "--strategy", "staged", "--stages", "50%,10%")
    assert bad.returncode == 2 and "stages" in bad.stderr and "Traceback" not in bad.stderr
    none = served.cli("rollout", "create", P, 2)
    assert none.returncode == 2 and "exactly one target" in none.stderr

    listing = json.loads(ok(served.cli("rollout", "list", P, "--json")))
    assert [r["id"] for r in listing["rollouts"]] == [rid]
    table = ok(served.cli("rollout", "list", P))
    assert table.splitlines()[0].split()[:3] == ["ID", "VERSION", "STATE"]

    assert json.loads(ok(served.cli("rollout", "pause", P, rid, "--json")))["state"] == "paused"
    again = served.cli("rollout", "pause", P, rid)
    assert again.returncode == 2 and "409" in again.stderr
    assert "running" in ok(served.cli("rollout", "resume", P, rid))

    shown = json.loads(ok(served.cli("rollout", "show", P, rid, "--devices", "--json")))
    assert sorted(d["id"] for d in shown["devices"]) == DEVICES
    assert [s["size"] for s in shown["rollout"]["stage_counts"]] == [1, 2, 2]
    text = ok(served.cli("rollout", "show", P, rid, "--devices"))
    assert "at stage 0 (stages 0-2)" in text and "PENDING" in text  # numbered from 0, as in JSON

    aborted = json.loads(ok(served.cli("rollout", "abort", P, rid, "--json")))
    assert aborted["state"] == "aborted" and aborted["counts"]["skipped"] == 5
    finished = served.cli("rollout", "resume", P, rid)
    assert finished.returncode == 2 and "already aborted" in finished.stderr
    audit = json.loads(ok(served.cli("audit", P, "--json")))
    actions = [a["action"] for a in audit["audit"]]
    assert {"rollout_created", "rollout_pause", "rollout_resume", "rollout_abort"} <= set(actions)


def test_preview_flags_count_devices_and_change_nothing(tmp_path: Path, served: Served) -> None:
    binary = tmp_path / "lamp-2.bin"
    binary.write_bytes(firmware.build(P, 2, 20_000))
    ok(served.cli("product", "create", "Lamp", "--id", P))
    ok(served.cli("firmware", "upload", P, binary))
    for device in DEVICES:
        ok(served.cli("product", "add-device", P, device))

    release = ok(served.cli("firmware", "release", P, 2, "--default", "--preview"))
    assert release.splitlines()[0] == "releasing version 2 would update 5 device(s)"
    assert f"  {DEVICES[0]} -> version 2" in release.splitlines()
    rollout = json.loads(ok(served.cli(
        "rollout", "create", P, 2, "--default", "--strategy", "staged", "--stages", "40%", "--preview", "--json",
    )))  # fmt: skip
    assert rollout == {"devices": 5, "stages": [2, 5], "sample": DEVICES}
    assert json.loads(ok(served.cli("rollout", "list", P, "--json")))["rollouts"] == []
    assert json.loads(ok(served.cli("firmware", "show", P, 2, "--json")))["product_default"] is False
    refused = served.cli("rollout", "create", P, 9, "--default", "--preview")
    assert refused.returncode == 2 and "no firmware version 9" in refused.stderr and "Traceback" not in refused.stderr
    # `--default` alone releases (it was sent with groups null, which the API refused).
    ok(served.cli("firmware", "release", P, 2, "--default"))
    assert json.loads(ok(served.cli("firmware", "show", P, 2, "--json")))["product_default"] is True
    after = ok(served.cli("firmware", "release", P, 2, "--default", "--preview"))
    assert after.splitlines() == ["releasing version 2 would update 0 device(s)"]
