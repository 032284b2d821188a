"""The commands a new user types, as subprocesses: serve, keygen, import, run, list, Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FLEETGATE = [sys.executable, "-m", "server.cli"]
FLEETSIM = [sys.executable, "-m", "firmware_sim.cli"]


def run(cmd: list[str], *args: str | Path | int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int, subprocess.Popen[str]]]:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*FLEETGATE, "serve", "--data-dir", str(data), "--device-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = 0
    for line in proc.stdout:
        if match := re.search(r"devices connect to 127\.0\.0\.1:(\d+)", line):
            port = int(match.group(1))
            break
    assert port, "server did not report its port"
    try:
        yield data, port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_quick_start_walkthrough(tmp_path: Path, served: tuple[Path, int, subprocess.Popen[str]]) -> None:
    data, port, proc = served
    assert (data / "server.key").stat().st_mode & 0o077 == 0  # private key readable by owner only
    ids = tmp_path / "ids"
    assert run(FLEETSIM, "keygen", "--count", 30, "--out", ids).returncode == 0
    assert (ids / "identities.csv").stat().st_mode & 0o077 == 0

    imported = run(FLEETGATE, "device", "import", ids / "devices.csv", "--data-dir", data)
    assert imported.returncode == 0 and "imported 30 devices" in imported.stdout

    fleet = run(
        FLEETSIM, "run", "--server", f"127.0.0.1:{port}", "--server-key", data / "server.pub",
        "--identities", ids, "--publish", 5, "--json",
    )  # fmt: skip
    assert fleet.returncode == 0, fleet.stderr
    report = json.loads(fleet.stdout)
    assert report["summary"]["connected"] == 30 and report["summary"]["events_acked"] == 150
    assert {d["outcome"] for d in report["devices"]} == {"connected"}

    strangers = tmp_path / "strangers"
    run(FLEETSIM, "keygen", "--count", 2, "--out", strangers)
    refused = run(
        FLEETSIM, "run", "--server", f"127.0.0.1:{port}", "--server-key", (data / "server.pub").read_text().strip(),
        "--identities", strangers, "--json",
    )  # fmt: skip
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["summary"]["refused"] == 2

    listing = run(FLEETGATE, "device", "list", "--data-dir", data, "--json")
    devices = json.loads(listing.stdout)
    assert len(devices) == 30 and all(d["last_heard"] for d in devices) and not any(d["online"] for d in devices)

    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "stopped" in out
    closes = [json.loads(line) for line in err.splitlines() if '"device_refused"' in line]
    assert len(closes) == 2 and all(c["detail"] == "unknown device ID" for c in closes)


def test_restart_keeps_the_server_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    keys = []
    for _ in range(2):
        proc = subprocess.Popen(
            [*FLEETGATE, "serve", "--data-dir", str(data), "--device-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if "server public key" in line:
                keys.append(line.split()[4])
            if "Ctrl-C" in line:
                break
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
        assert proc.returncode == 0
    assert keys[0] == keys[1] == (data / "server.pub").read_text().strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["device", "add", "xyz", "00" * 32], "a device ID is 24 hex characters"),
        (["device", "add", "ab" * 12, "00"], "a public key is 64 hex characters"),
        (["device", "list"], "no data directory"),
    ],
)
def test_fleetgate_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(FLEETGATE, *args, "--data-dir", tmp_path / "missing")
    assert result.returncode == 2
    assert result.stderr.startswith("fleetgate: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_import_reports_bad_rows_and_keeps_good_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    csv = tmp_path / "keys.csv"
    good = "ab" * 12
    rows = ["device_id,public_key", f"{good},{'11' * 32}", f"not-an-id,{'22' * 32}", "cd" * 12, f"{good},{'11' * 32}"]
    csv.write_text("\n".join(rows) + "\n")
    result = run(FLEETGATE, "device", "import", csv, "--data-dir", data, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["added"] == [good]
    assert [e["device"] for e in report["errors"]] == ["line 3: not-an-id", f"line 4: {'cd' * 12}", f"line 5: {good}"]


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


def test_demo_tells_the_story() -> None:
    result = run(FLEETGATE, "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every case behaved as the rules say" in result.stdout
    for expected in ["QUARANTINED", "DENIED", "refused", "auto-approved", "without reconnecting"]:
        assert expected in result.stdout
