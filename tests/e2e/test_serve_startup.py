"""`fleetgate serve` as a new user runs it: ports in use, a second server, data directory modes, logs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_support import FLEETGATE, FLEETSIM, run, serving, stop

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another program is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _serve(data: Path, *args: str | int) -> subprocess.CompletedProcess[str]:
    return run(FLEETGATE, "serve", "--data-dir", data, *args)


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("which", ["device", "API"])
def test_a_port_in_use_is_one_line_and_creates_nothing(tmp_path: Path, taken_port: int, which: str) -> None:
    data = tmp_path / "data"
    ports = (
        ("--device-port", taken_port, "--api-port", 0)
        if which == "device"
        else ("--device-port", 0, "--api-port", taken_port)
    )
    result = _serve(data, *ports)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert f"{which} port {taken_port}" in line and "already in use" in line
    assert not data.exists()  # no data directory, no key, no admin token for a server that never ran


def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data) as first:
        second = _serve(data, "--device-port", 0, "--api-port", 0)
        assert second.returncode == 2
        line = _one_line(second.stderr)
        assert str(data) in line and f"process {first.proc.pid}" in line
        assert first.proc.poll() is None  # the first one runs on
        assert (data / "fleetgate.lock").read_text().strip() == str(first.proc.pid)
        stop(first)
    with serving(data) as again:  # released on a clean stop
        stop(again)


def test_a_lock_file_left_by_a_dead_process_does_not_block(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (data / "fleetgate.lock").write_text(dead.stdout)
    with serving(data) as server:
        assert (data / "fleetgate.lock").read_text().strip() == str(server.proc.pid)
        stop(server)


def _modes(data: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(data.stat().st_mode)}
    for path in data.rglob("*"):
        found[str(path.relative_to(data))] = stat.S_IMODE(path.stat().st_mode)
    return found


@pytest.mark.sqlite_only  # the SQLite file is among the data directory's files
def test_the_data_directory_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    data, binary = tmp_path / "data", tmp_path / "fw.bin"
    run(FLEETSIM, "firmware", "build", "--product", 4300, "--version", 2, "--size", 4096, "--out", binary)
    previous = os.umask(0)  # the children inherit it: the worst case, everything created 0666/0777
    try:
        with serving(data) as server:
            assert server.cli("product", "create", "Modes", "--id", 4300).returncode == 0
            assert server.cli("firmware", "upload", 4300, binary).returncode == 0
            modes = _modes(data)
            stop(server)
    finally:
        os.umask(previous)
    expected = {"fleetgate.db", "fleetgate.db-wal", "fleetgate.db-shm", "server.key", "server.pub", "admin.token"}
    assert expected | {"fleetgate.lock"} <= modes.keys()
    assert any(name.endswith(".bin") for name in modes), modes
    loose = {name: oct(mode) for name, mode in modes.items() if mode != (0o700 if (data / name).is_dir() else 0o600)}
    assert not loose


@pytest.mark.sqlite_only  # the SQLite file is among the data directory's files
def test_an_existing_loose_data_directory_is_tightened_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data) as server:
        stop(server)
    os.chmod(data, 0o755)
    for path in data.iterdir():
        os.chmod(path, 0o644)
    with serving(data) as server:
        modes = _modes(data)
        _, err = stop(server)
    assert modes["."] == 0o700 and all(mode == 0o600 for name, mode in modes.items() if name != ".")
    tightened = [json.loads(line) for line in err.splitlines() if "data_dir_tightened" in line]
    assert len(tightened) == 1 and str(data / "fleetgate.db") in tightened[0]["paths"]


@pytest.mark.sqlite_only  # two data directories (two secrets keys) on one database
def test_logs_have_iso_timestamps_as_json_or_text(tmp_path: Path) -> None:
    with serving(tmp_path / "json") as server:
        _, err = stop(server)
    records = [json.loads(line) for line in err.splitlines()]
    assert records and all(ISO_UTC.match(r["ts"]) for r in records)
    assert any(r["event"] == "listening" for r in records)

    with serving(tmp_path / "text", "--log-format", "text") as server:
        _, err = stop(server)
    lines = err.splitlines()
    assert lines and all(ISO_UTC.match(line.split(" ", 1)[0]) for line in lines), lines
    listening = next(line for line in lines if " listening " in line)
    assert "fleetgate.app" in listening and f"data_dir={tmp_path / 'text'}" in listening
    assert not any(line.startswith("{") for line in lines)


def test_a_second_ctrl_c_while_stopping_still_stops_cleanly(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as server:
        server.proc.send_signal(signal.SIGINT)
        time.sleep(0.001)  # an impatient second Ctrl-C, while the first one's shutdown runs
        server.proc.send_signal(signal.SIGINT)
        out, err = server.proc.communicate(timeout=30)
    assert server.proc.returncode == 0 and "Traceback" not in err, err
    assert out.endswith("fleetgate: stopped\n")
    signals = [json.loads(line) for line in err.splitlines() if '"signal"' in line]
    # The second is logged as such, unless it came as the server finished (then it is dropped).
    assert signals[0]["already_stopping"] is False and all(s["already_stopping"] for s in signals[1:])


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ("postgresql://fleetgate@127.0.0.1:1/fleet", "cannot connect to PostgreSQL database fleet on 127.0.0.1:1"),
        ("mysql://fleetgate@127.0.0.1/fleet", "--database takes a postgresql:// URL, not 'mysql'"),
    ],
)
def test_a_database_that_cannot_be_used_is_one_line(tmp_path: Path, database: str, expected: str) -> None:
    # No PostgreSQL listens on port 1: the flag wins over FLEETGATE_DATABASE_URL (set on the PostgreSQL pass).
    result = _serve(tmp_path / "data", "--device-port", 0, "--api-port", 0, "--database", database)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert expected in line and "fleetgate@" not in line.split(":", 1)[1], line


def test_the_commands_beside_serve_say_what_they_cannot_do_with_a_database(tmp_path: Path) -> None:
    unreachable = "postgresql://fleetgate@127.0.0.1:1/fleet"
    backup = run(FLEETGATE, "backup", "--data-dir", tmp_path, "--database", unreachable, tmp_path / "copy.db")
    assert backup.returncode == 2 and "pg_dump" in _one_line(backup.stderr)
    token = run(FLEETGATE, "admin-token", "--data-dir", tmp_path, "--database", unreachable)
    assert token.returncode == 2 and "cannot connect to PostgreSQL database fleet" in _one_line(token.stderr)
