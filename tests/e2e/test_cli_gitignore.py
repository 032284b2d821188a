"""What the README walk-through writes into a checkout (data, identities, private keys) stays out of git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path",
    [
        "fleetgate-data/admin.token",
        "fleetgate-data/server.key",
        "fleetgate-data/fleetgate.db",
        "sim-devices/devices.csv",
        "elsewhere/identities.csv",
        "server.key",
        "signing.pem",
        "signing.pem.pub",
        "lamp-2.bin",
        "lamp-2.bin.sig",
    ],
)
def test_walkthrough_files_are_ignored(path: str) -> None:
    result = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", path], capture_output=True, timeout=30)
    assert result.returncode == 0, f"{path} is not ignored"
