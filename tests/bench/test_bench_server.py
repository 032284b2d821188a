"""A benchmark whose server cannot start says why, in the server's own words."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.bench.server import BenchServer, ServerFailed


def test_a_server_that_cannot_start_is_reported_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    first = BenchServer(tmp_path / "run" / "data")
    first.start()
    try:
        second = BenchServer(tmp_path / "run" / "data")  # the same data directory: refused while the first runs
        with pytest.raises(ServerFailed, match="is in use by process"):
            second.start()
    finally:
        first.stop()
