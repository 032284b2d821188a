"""`fleetgate backup` holds the firmware binaries: they are in the database (migration 14)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
import trio

from firmware_sim import firmware

from ..api.conftest import start_api
from .cli_support import FLEETGATE

pytestmark = pytest.mark.sqlite_only  # the SQLite file's backup

P = 4902


async def test_a_backup_holds_the_uploaded_binaries(tmp_path: Path, nursery: trio.Nursery) -> None:
    image = firmware.build(P, 3, 40_000, seed=5)
    api = await start_api(tmp_path, nursery)
    async with api.http:
        await api.product("Meter", P)
        files = {"binary": ("meter-3.bin", image)}
        await api.ok("POST", f"/v1/products/{P}/firmware", files=files, data={"version": "3", "title": "v3"})
        copy = tmp_path / "backup.db"
        await trio.run_process([*FLEETGATE, "backup", str(copy), "--data-dir", str(api.data_dir)], capture_stdout=True)
    api.server.shutdown()
    db = sqlite3.connect(copy)
    try:
        (stored,) = db.execute("SELECT data FROM firmware_blobs WHERE sha256 = ?", (hashlib.sha256(image).hexdigest(),))
    finally:
        db.close()
    assert stored == (image,)
