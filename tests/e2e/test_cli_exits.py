"""How `fleetgate` ends when its user stops listening: Ctrl-C, a closed pipe; and --version."""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import time

import pytest

from .cli_support import FLEETGATE, Served, run

ENTRY = [sys.executable, "-m", "server.cli"]  # what the installed `fleetgate` runs


def test_version() -> None:
    result = run(FLEETGATE, "--version")
    assert result.returncode == 0 and result.stdout == f"fleetgate {importlib.metadata.version('fleetgate')}\n"


def test_the_installed_command_is_the_quiet_entry_point() -> None:
    scripts = importlib.metadata.entry_points(group="console_scripts", name="fleetgate")
    assert [s.value for s in scripts] == ["server.cli.__main__:main"]


@pytest.mark.parametrize("delay", [0.05, 0.1, 0.2, 0.3, 0.5])
def test_ctrl_c_while_starting_prints_no_traceback(delay: float) -> None:
    # At several points of start-up: imports, parsing, connecting (nothing listens on port 9).
    starting = subprocess.Popen(
        [*ENTRY, "events", "tail", "1", "--token", "x", "--api", "http://127.0.0.1:9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    starting.send_signal(signal.SIGINT)
    _, err = starting.communicate(timeout=15)
    # 130 from our handlers; -SIGINT if it came before Python's own handler was installed (silent too);
    # 2 if the refused connection was reported first.
    assert starting.returncode in (130, -signal.SIGINT, 2), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_ctrl_c_ends_events_tail_quietly(served: Served) -> None:
    assert served.cli("product", "create", "Widget", "--id", 4201).returncode == 0
    tail = subprocess.Popen(
        [*ENTRY, "events", "tail", "4201", "--data-dir", str(served.data), "--api", served.api],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)  # started, connected and waiting for events
    assert tail.poll() is None, tail.communicate()
    tail.send_signal(signal.SIGINT)
    out, err = tail.communicate(timeout=15)
    assert tail.returncode == 130 and err == "" and out == ""


def test_a_closed_pipe_ends_output_quietly(served: Served) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has already gone: every write fails with EPIPE
    try:
        listing = subprocess.run(
            [*ENTRY, "product", "list", "--data-dir", str(served.data), "--api", served.api],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert listing.returncode == 141 and listing.stderr == ""
