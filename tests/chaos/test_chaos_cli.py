"""`fleetsim chaos`: the scenarios it lists, and bad arguments as one line on stderr."""

from __future__ import annotations

import subprocess

from firmware_sim.chaos.cli import SCENARIOS, _cannot_run
from firmware_sim.drill_server import ServerFailed

from .support import FLEETSIM


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLEETSIM, "chaos", *args], capture_output=True, text=True, timeout=60)


def test_help_lists_every_scenario_with_a_line_each() -> None:
    result = run("--help")
    assert result.returncode == 0
    listed = result.stdout.split("scenarios:", 1)[1]
    for name in SCENARIOS:
        line = next(line for line in listed.splitlines() if line.strip().startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 20, line  # a real description, not just the name


def test_an_unknown_scenario_is_refused() -> None:
    result = run("meteor")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


def test_server_without_its_api_and_data_dir_is_one_line_and_exit_2() -> None:
    result = run("junk", "--server", "127.0.0.1:5683")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--server needs --api" in result.stderr


def test_a_bad_server_address_is_one_line_and_exit_2(tmp_path: object) -> None:
    result = run("malformed", "--server", "nowhere", "--api", "http://127.0.0.1:1", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr and "Traceback" not in result.stderr


def test_a_scenario_lists_its_own_options() -> None:
    result = run("crash-publish", "--help")
    assert result.returncode == 0 and "--kills" in result.stdout and "--devices" in result.stdout


def test_bad_scenario_options_are_one_line_and_exit_2() -> None:
    for args in (("junk", "--kinds", "bogus"), ("crash-publish", "--kills", "-1"), ("malformed", "--messages", "0")):
        result = run(*args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr and result.stderr.strip(), args


def test_a_could_not_run_error_inside_nurseries_is_found_and_others_are_not() -> None:
    failed = ServerFailed("the server did not start")
    assert _cannot_run(ExceptionGroup("outer", [ExceptionGroup("inner", [failed])])) is failed
    assert _cannot_run(ExceptionGroup("two", [failed, ValueError()])) is None
    assert _cannot_run(ValueError()) is None
