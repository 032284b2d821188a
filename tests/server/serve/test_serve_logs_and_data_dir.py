"""The log formatters and the data directory's helpers, in-process."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.app import start_up
from server.config import ServerConfig
from server.data_dir import DataDirInUse, DataDirLock, create_private_file, prepare_data_dir
from server.logs import IsoClock, JsonFormatter, TextFormatter, iso

AT = 1796573103.1234  # 2026-12-06T16:05:03.123Z


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord("fleetgate.app", logging.INFO, __file__, 1, "listening", None, None)
    record.created = AT
    record.fields = fields
    return record


def test_json_lines_carry_an_iso_utc_timestamp() -> None:
    line = json.loads(JsonFormatter().format(_record(device_port=5683)))
    assert line == {
        "ts": "2026-12-06T16:05:03.123Z",
        "level": "info",
        "logger": "fleetgate.app",
        "event": "listening",
        "device_port": 5683,
    }


@given(st.lists(st.floats(min_value=0, max_value=4e9, allow_nan=False), min_size=1, max_size=20))
def test_the_log_clock_writes_what_iso_writes(times: list[float]) -> None:
    """The formatters' per-second cache of the date (IsoClock) gives iso's digits, rounding into the
    next second included, for times in any order."""
    clock = IsoClock()
    for t in [*times, *(float(int(t)) + 0.9999995 for t in times)]:
        assert clock(t) == iso(t), t


def test_text_lines_are_readable_and_quote_what_needs_it() -> None:
    line = TextFormatter().format(_record(host="127.0.0.1", detail="unknown device ID", ids=[1, 2], empty=""))
    assert line == (
        '2026-12-06T16:05:03.123Z info    fleetgate.app listening host=127.0.0.1 detail="unknown device ID" '
        'ids=[1, 2] empty=""'
    )


@pytest.fixture
def no_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("no_umask")
def test_created_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "a" / "data"
    prepare_data_dir(data)
    create_private_file(data / "fleetgate.db")
    assert _mode(data) == 0o700 and _mode(data / "fleetgate.db") == 0o600


def test_an_existing_directory_is_tightened_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    (data / "firmware" / "7").mkdir(parents=True)
    (data / "firmware" / "7" / "1-ab.bin").write_bytes(b"x")
    (data / "server.key").write_text("k")
    for path in (data, data / "firmware", data / "firmware" / "7"):
        path.chmod(0o755)
    (data / "server.key").chmod(0o644)
    prepare_data_dir(data)
    assert {str(p.relative_to(data)): _mode(p) for p in data.rglob("*")} == {
        "firmware": 0o700,
        "firmware/7": 0o700,
        "firmware/7/1-ab.bin": 0o600,
        "server.key": 0o600,
    }
    assert _mode(data) == 0o700
    (record,) = [r for r in caplog.records if r.getMessage() == "data_dir_tightened"]
    assert str(data / "server.key") in record.fields["paths"]  # type: ignore[attr-defined]
    caplog.clear()
    prepare_data_dir(data)  # nothing left to tighten: no log line
    assert not [r for r in caplog.records if r.getMessage() == "data_dir_tightened"]


def test_the_lock_is_exclusive_names_its_holder_and_is_released(tmp_path: Path) -> None:
    prepare_data_dir(tmp_path)
    first = DataDirLock(tmp_path)
    assert (tmp_path / "fleetgate.lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(DataDirInUse, match=f"in use by process {os.getpid()}"):
        DataDirLock(tmp_path)  # a second open file description: flock refuses it even in one process
    first.release()
    DataDirLock(tmp_path).release()


def test_a_server_refused_the_lock_has_touched_nothing_in_the_directory(tmp_path: Path) -> None:
    """The lock comes before tightening: a second server walks nothing of a live one's directory."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    loose = data / "upload.tmp"
    loose.write_bytes(b"x")
    os.chmod(loose, 0o644)
    held = DataDirLock(data)
    try:
        with pytest.raises(DataDirInUse):
            start_up(ServerConfig(data_dir=data), exclusive=True)
        assert stat.S_IMODE(loose.stat().st_mode) == 0o644
    finally:
        held.release()
