"""What the operator CLI tells a new user: the file to import, release targets, approvals, policy,
a device's firmware, rollout stages. Each against a real `fleetgate serve`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from firmware_sim import firmware

from .cli_support import FLEETSIM, Served, run

P = 4201


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("fleetgate: ") and result.stderr.count("\n") == 1, result.stderr
    assert all(n in result.stderr for n in needles), result.stderr


def test_import_refuses_the_private_key_file(tmp_path: Path, served: Served) -> None:
    ids = tmp_path / "sim-devices"
    ok(run(FLEETSIM, "keygen", "--count", 3, "--out", ids))
    one_line_error(served.cli("device", "import", ids / "identities.csv"), "private", str(ids / "devices.csv"))
    assert json.loads(ok(served.cli("device", "list", "--json"))) == []  # nothing registered
    assert "registered 3 device keys" in ok(served.cli("device", "import", ids / "devices.csv"))


def test_release_needs_a_target_and_unrelease_is_explicit(tmp_path: Path, served: Served) -> None:
    binary = tmp_path / "lamp-2.bin"
    binary.write_bytes(firmware.build(P, 2, 20_000))
    ok(served.cli("product", "create", "Lamp", "--id", P))
    ok(served.cli("firmware", "upload", P, binary))
    for group in ("beta", "gamma"):
        ok(served.cli("group", "create", P, group))
    ok(served.cli("firmware", "release", P, 2, "--default", "--group", "beta", "gamma"))

    def targets() -> tuple[bool, list[str]]:
        record = json.loads(ok(served.cli("firmware", "show", P, 2, "--json")))
        return record["product_default"], record["groups"]

    one_line_error(served.cli("firmware", "release", P, 2), "--default or --group", "unrelease")
    assert targets() == (True, ["beta", "gamma"])  # the release it had is untouched

    assert "still released to product default, group gamma" in ok(
        served.cli("firmware", "unrelease", P, 2, "--group", "beta")
    )
    assert targets() == (True, ["gamma"])
    one_line_error(served.cli("firmware", "unrelease", P, 2, "--group", "beta"), "not released to group beta")
    assert "no longer released" in ok(served.cli("firmware", "unrelease", P, 2))
    assert targets() == (False, [])
    one_line_error(served.cli("firmware", "unrelease", P, 2), "is not released")


def test_approve_says_what_happened(tmp_path: Path, served: Served) -> None:
    ok(served.cli("product", "create", "Widget", "--id", P))
    ids = tmp_path / "ids"
    ok(run(FLEETSIM, "keygen", "--count", 1, "--out", ids))
    ok(served.cli("device", "import", ids / "devices.csv"))
    assert served.fleet(ids, "--product", P)["summary"]["statuses"] == {"quarantined": 1}
    quarantined = (ids / "devices.csv").read_text().splitlines()[1].split(",")[0]
    stranger, denied = "ab" * 12, "cd" * 12

    assert "approved from quarantine" in ok(served.cli("product", "approve", P, quarantined))
    assert "pre-added" in ok(served.cli("product", "approve", P, stranger))
    ok(served.cli("product", "add-device", P, denied))
    ok(served.cli("product", "deny", P, denied))
    assert "re-approved from the Denied list" in ok(served.cli("product", "approve", P, denied))
    assert "already a member" in ok(served.cli("product", "approve", P, denied))
    assert json.loads(ok(served.cli("product", "approve", P, denied, "--json")))["action"] == "existing"

    audit = json.loads(ok(served.cli("audit", P, "--json")))["audit"]
    said = {(a["device_id"], a["action"]) for a in audit}
    assert {(quarantined, "approved"), (stranger, "preadded"), (denied, "approved")} <= said


def test_product_devices_filters_by_firmware_and_online(tmp_path: Path, served: Served) -> None:
    ok(served.cli("product", "create", "Lamp", "--id", P))
    for device_id in ("aa" * 12, "bb" * 12):
        ok(served.cli("product", "add-device", P, device_id))
    offline = json.loads(ok(served.cli("product", "devices", P, "--online", "no", "--sort", "deviceId", "--desc",
                                       "--json")))  # fmt: skip
    assert [d["id"] for d in offline["devices"]] == ["bb" * 12, "aa" * 12]
    assert json.loads(ok(served.cli("product", "devices", P, "--online", "yes", "--json")))["devices"] == []
    none_yet = served.cli("product", "devices", P, "--firmware-version", 3, "--json")
    assert json.loads(ok(none_yet))["devices"] == []


def test_policy_without_a_value_shows_it(served: Served) -> None:
    ok(served.cli("product", "create", "Widget", "--id", P, "--policy", "preadd_only"))
    assert ok(served.cli("product", "policy", P)) == f"product {P}: policy preadd_only\n"
    assert json.loads(ok(served.cli("product", "policy", P, "--json")))["policy"] == "preadd_only"
    ok(served.cli("product", "policy", P, "auto_approve"))
    assert "policy auto_approve" in ok(served.cli("product", "policy", P))


def test_device_show_has_groups_lock_and_pending_update(tmp_path: Path, served: Served) -> None:
    ok(served.cli("product", "create", "Lamp", "--id", P))
    for version in (2, 3):
        binary = tmp_path / f"lamp-{version}.bin"
        binary.write_bytes(firmware.build(P, version, 20_000))
        ok(served.cli("firmware", "upload", P, binary))
    ok(served.cli("group", "create", P, "beta"))
    device = "0123456789abcdef01234567"
    ok(served.cli("product", "add-device", P, device))
    ok(served.cli("device", "groups", P, device, "beta"))
    ok(served.cli("firmware", "release", P, 3, "--group", "beta"))

    shown = json.loads(ok(served.cli("device", "show", device, "--product", P, "--json")))
    assert shown["groups"] == ["beta"] and shown["desired_firmware_version"] is None
    assert shown["targeted_firmware_release_version"] == 3 and shown["firmware_update_pending"] is True

    ok(served.cli("device", "lock", P, device, 2))
    text = ok(served.cli("device", "show", device))  # no --product: the device's own product
    lines = {line.split("  ")[0].strip(): line.split()[-1] for line in text.splitlines()}
    assert lines["groups"] == "beta" and lines["locked to version"] == "2"
    assert lines["should run version"] == "2" and lines["update pending"] == "yes"


def test_rollout_stages_are_numbered_alike(tmp_path: Path, served: Served) -> None:
    binary = tmp_path / "lamp-2.bin"
    binary.write_bytes(firmware.build(P, 2, 20_000))
    ok(served.cli("product", "create", "Lamp", "--id", P))
    ok(served.cli("firmware", "upload", P, binary))
    for i in range(1, 5):
        ok(served.cli("product", "add-device", P, f"{i:024x}"))
    created = ok(
        served.cli("rollout", "create", P, 2, "--default", "--strategy", "staged", "--stages", "1,2", "--json")
    )
    rid = json.loads(created)["id"]

    shown = json.loads(ok(served.cli("rollout", "show", P, rid, "--devices", "--json")))
    json_stages = [s["stage"] for s in shown["rollout"]["stage_counts"]]
    json_device_stages = {d["id"]: d["stage"] for d in shown["devices"]}
    assert shown["rollout"]["current_stage"] == json_stages[0]

    text = ok(served.cli("rollout", "show", P, rid, "--devices"))
    header, stages, devices = text.split("\n\n")[0], text.split("\n\n")[0], text.split("\n\n")[1]
    assert f"at stage {shown['rollout']['current_stage']} (stages {json_stages[0]}-{json_stages[-1]})" in header
    stage_rows = [line.split() for line in stages.splitlines() if line.split()[0].isdigit()]
    assert [int(row[0]) for row in stage_rows] == json_stages
    device_rows = [line.split() for line in devices.splitlines()[1:]]
    assert {row[0]: int(row[1]) for row in device_rows} == json_device_stages
