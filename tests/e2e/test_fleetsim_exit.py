"""`fleetsim` ended the way a user ends it: Ctrl-C, or its output piped into `head`; and --timeout vs --hold.

Real processes against a real `fleetgate serve`; the signals are real SIGINTs."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .cli_support import FLEETSIM, Served, run

P = 4410


def _wait_for(condition: str, check: object, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.1)


@pytest.fixture
def identities(tmp_path: Path, served: Served) -> Path:
    """Two registered device identities, members of product P."""
    ids = tmp_path / "ids"
    assert run(FLEETSIM, "keygen", "--count", 2, "--out", ids).returncode == 0
    assert served.cli("device", "import", ids / "devices.csv").returncode == 0
    assert served.cli("product", "create", "Exit", "--id", P).returncode == 0
    for line in (ids / "devices.csv").read_text().splitlines()[1:]:
        assert served.cli("product", "add-device", P, line.split(",")[0]).returncode == 0
    return ids


def _online(served: Served) -> int:
    listing = served.cli("device", "list", "--json")
    return sum(bool(d["online"]) for d in json.loads(listing.stdout))


def _fleetsim(*args: str | Path | int, tmpdir: Path | None = None, own_group: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.Popen(
        [*FLEETSIM, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=own_group,
    )


def _interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return out, err


def test_ctrl_c_on_run_exits_130_without_a_traceback(served: Served, identities: Path) -> None:
    proc = _fleetsim(
        "run", "--server", f"127.0.0.1:{served.port}", "--server-key", served.data / "server.pub",
        "--identities", identities, "--product", P, "--hold", 120,
    )  # fmt: skip
    _wait_for("both devices online", lambda: _online(served) == 2)
    _, err = _interrupt(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "", err


def test_ctrl_c_on_listen_exits_130_with_its_summary(served: Served, identities: Path) -> None:
    proc = _fleetsim(
        "listen", "--server", f"127.0.0.1:{served.port}", "--server-key", served.data / "server.pub",
        "--identities", identities, "--product", P, "--subscribe", "temp",
    )  # fmt: skip
    assert proc.stdout is not None
    assert "subscribed" in proc.stdout.readline()
    out, err = _interrupt(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "", err
    assert out.strip() == "0 events, 0 skipped by the server"


def test_ctrl_c_on_a_drill_stops_its_server_and_says_where_its_data_is(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # Both devices join 1-60 s after the rollout starts: the drill is still running when Ctrl-C comes.
    proc = _fleetsim(
        "drill", "--devices", 2, "--mix", "late=2", "--late-window", 60, "--size", 4096,
        tmpdir=scratch, own_group=True,
    )  # fmt: skip
    _wait_for("the drill's server", lambda: any(scratch.glob("fleetsim-drill-*/data/server.pub")))
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the drill and its server both get it
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    (left,) = scratch.glob("fleetsim-drill-*")
    assert f"drill interrupted; its server data and log are left in {left}" in err
    assert (left / "data.log").exists()
    with (left / "data" / "fleetgate.lock").open() as lock:  # the server is gone: nobody holds its lock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_output_into_a_closed_pipe_exits_quietly(served: Served, identities: Path) -> None:
    """As `fleetsim run ... | head -0`: the reader is gone before the report is printed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [*FLEETSIM, "run", "--server", f"127.0.0.1:{served.port}", "--server-key", str(served.data / "server.pub"),
             "--identities", str(identities), "--product", str(P)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr


def test_timeout_bounds_connecting_not_the_hold(served: Served, identities: Path) -> None:
    result = run(
        FLEETSIM, "run", "--server", f"127.0.0.1:{served.port}", "--server-key", served.data / "server.pub",
        "--identities", identities, "--product", P, "--timeout", 1, "--hold", 3, "--publish", 1, "--json",
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert [d["error"] for d in report["devices"]] == [None, None]
    assert report["summary"]["connected"] == 2 and report["summary"]["events_acked"] == 2
    assert report["summary"]["elapsed_s"] >= 3  # they held the full 3 s
