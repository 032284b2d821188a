from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _capture_fleetgate_info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Sessions log their close reasons at INFO; tests read those records."""
    caplog.set_level(logging.INFO, logger="fleetgate")
