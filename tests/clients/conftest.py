from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli_support import Served, serving


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A `fleetgate serve` process; webhooks may target loopback (the harness points one there)."""
    with serving(tmp_path / "data", "--webhook-allow-private") as server:
        yield server
