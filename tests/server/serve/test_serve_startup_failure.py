"""Which failures `fleetgate serve` reports as one line (exit 2) and which keep their traceback."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

from server import app
from server.app import startup_failure
from server.config import ServerConfig
from server.data_dir import DataDirInUse
from server.ports import PortUnavailable

IN_USE = PortUnavailable("127.0.0.1", "device", 5683, OSError(errno.EADDRINUSE, "Address already in use"))


def test_a_port_in_use_is_one_line_even_inside_nested_groups() -> None:
    expected = "cannot listen on 127.0.0.1 device port 5683: the port is already in use (is another fleetgate running?)"
    assert startup_failure(IN_USE) == expected
    assert startup_failure(ExceptionGroup("nursery", [ExceptionGroup("inner", [IN_USE])])) == expected


def test_a_held_data_directory_names_the_process() -> None:
    held = DataDirInUse(Path("/srv/fg"), 4242)
    assert startup_failure(ExceptionGroup("nursery", [held])) == (
        "data directory /srv/fg is in use by process 4242 (another fleetgate serve?)"
    )


def test_an_unwritable_data_directory_is_one_line() -> None:
    denied = PermissionError(errno.EACCES, "Permission denied", "/srv/fg")
    assert startup_failure(denied) == "cannot start: /srv/fg: Permission denied"


def test_failures_while_serving_keep_their_traceback() -> None:
    assert startup_failure(ExceptionGroup("nursery", [OSError(errno.EIO, "I/O error")])) is None
    assert startup_failure(ExceptionGroup("nursery", [IN_USE, ValueError("other")])) is None
    assert startup_failure(RuntimeError("bug")) is None


def test_a_failure_after_the_server_started_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError before serving is one line; the same error once serving is not a start-up failure."""

    async def serves_then_fails(config: ServerConfig, ready: Callable[[object], None]) -> None:
        ready(object())
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(app, "run_forever", serves_then_fails)
    with pytest.raises(OSError, match="Too many open files"):
        app.serve_until_stopped(ServerConfig(data_dir=Path("unused")))
