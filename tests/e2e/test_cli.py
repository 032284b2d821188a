"""The commands a new user types, as subprocesses: serve, keygen, import, run, list, Ctrl-C."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .cli_support import FLEETGATE, FLEETSIM, Served, run, start_server, stop


def test_quick_start_walkthrough(tmp_path: Path, served: Served) -> None:
    data = served.data
    assert (data / "server.key").stat().st_mode & 0o077 == 0  # private key readable by owner only
    assert (data / "admin.token").stat().st_mode & 0o077 == 0
    assert "first run: admin token written to" in served.banner
    ids = tmp_path / "ids"
    assert run(FLEETSIM, "keygen", "--count", 30, "--out", ids).returncode == 0
    assert (ids / "identities.csv").stat().st_mode & 0o077 == 0

    imported = served.cli("device", "import", ids / "devices.csv")
    assert imported.returncode == 0 and "registered 30 device keys" in imported.stdout, imported.stderr

    report = served.fleet(ids, "--publish", 5)
    assert report["summary"]["connected"] == 30 and report["summary"]["events_acked"] == 150
    assert report["summary"]["statuses"] == {"development": 30}

    strangers = tmp_path / "strangers"
    run(FLEETSIM, "keygen", "--count", 2, "--out", strangers)
    assert served.fleet(strangers)["summary"]["refused"] == 2

    devices = json.loads(served.cli("device", "list", "--json").stdout)  # Particle answers a plain array
    assert len(devices) == 30 and all(d["last_heard"] for d in devices)

    # Products: an unrecognised device is quarantined until the operator approves it.
    created = json.loads(served.cli("product", "create", "Widget", "--id", 4201, "--json").stdout)
    assert created["id"] == 4201 and created["policy"] == "quarantine"
    assert served.fleet(ids, "--count", 3, "--product", 4201)["summary"]["statuses"] == {"quarantined": 3}
    listed = json.loads(served.cli("product", "devices", 4201, "--status", "quarantined", "--json").stdout)
    first = (ids / "devices.csv").read_text().splitlines()[1].split(",")[0]  # what `--count 1` runs
    assert len(listed["devices"]) == 3 and first in {d["id"] for d in listed["devices"]}
    assert served.cli("product", "approve", 4201, first).returncode == 0
    one = served.fleet(ids, "--count", 1, "--product", 4201)
    assert one["devices"][0]["device_id"] == first and one["devices"][0]["status"] == "ok"
    assert one["devices"][0]["privileges"] == ["ota", "product_events", "claim", "webhooks"]
    audit = json.loads(served.cli("audit", 4201, "--json").stdout)["audit"]
    assert "approved" in [a["action"] for a in audit]

    out, err = stop(served)
    assert "stopped" in out
    refusals = [json.loads(line) for line in err.splitlines() if '"device_refused"' in line]
    assert len(refusals) == 2 and all(r["detail"] == "unknown device ID" for r in refusals)


def test_restart_keeps_the_server_key_and_the_admin(tmp_path: Path) -> None:
    first = start_server(tmp_path / "data")
    stop(first)
    second = start_server(tmp_path / "data")
    stop(second)
    key = re.findall(r"server public key ([0-9a-f]{64})", first.banner + second.banner)
    assert len(key) == 2 and key[0] == key[1] == (tmp_path / "data" / "server.pub").read_text().strip()
    assert "admin token written" not in second.banner


def test_operator_errors_are_one_line(served: Served) -> None:
    cases = [
        (("device", "add", "xyz", "00" * 32), "24 hex"),
        (("product", "show", "999"), "404"),
        (("product", "approve", "999", "ab" * 12), "404"),
    ]
    for args, message in cases:
        result = served.cli(*args)
        assert result.returncode == 2, (args, result.stdout)
        assert result.stderr.startswith("fleetgate: ") and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_without_a_token_the_cli_says_how_to_get_one(tmp_path: Path) -> None:
    result = run(FLEETGATE, "product", "list", "--data-dir", tmp_path / "missing")
    assert result.returncode == 2 and "no token" in result.stderr and "Traceback" not in result.stderr


def test_key_import_reports_bad_rows_and_keeps_good_ones(tmp_path: Path, served: Served) -> None:
    csv = tmp_path / "keys.csv"
    good = "ab" * 12
    rows = ["device_id,public_key", f"{good},{'11' * 32}", f"not-an-id,{'22' * 32}", f"{'cd' * 12},{'33' * 31}"]
    csv.write_text("\n".join(rows) + "\n")
    result = served.cli("device", "import", csv, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["registered"] == [good]
    assert len(report["errors"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--server", "nohost", "--server-key", "00" * 32, "--identities", "x"], "--server must be HOST:PORT"),
        (["run", "--server", "h:1", "--server-key", "zz", "--identities", "x"], "cannot load identities"),
        (["keygen", "--count", "0", "--out", "x"], "--count must be at least 1"),
    ],
)
def test_fleetsim_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run([*FLEETSIM, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    result = run(FLEETGATE, "serve", "--data-dir", tmp_path / "data", "--max-handshakes", 0)
    assert result.returncode == 2 and "max_handshakes must be at least 1" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_demo_tells_the_story() -> None:
    result = run(FLEETGATE, "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every case behaved as the rules say" in result.stdout
    for expected in ["QUARANTINED", "DENIED", "refused", "auto-approved", "without reconnecting"]:
        assert expected in result.stdout
