"""Which failures `fleetgate serve` reports as one line (exit 2) and which keep their traceback."""

from __future__ import annotations

import errno
from pathlib import Path

from server.app import startup_failure
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
