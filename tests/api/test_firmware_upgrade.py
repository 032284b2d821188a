"""Upgrading a data directory whose firmware binaries are files (before migration 14): the server's
first start moves them into the store, and the API serves them from there."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
import trio

from firmware_sim import firmware
from server.store.sqlite.migrations import MIGRATIONS

from .conftest import start_api

pytestmark = pytest.mark.sqlite_only  # the data directory an older SQLite server left

P = 4201


def old_data_dir(data_dir: Path, image: bytes) -> Path:
    """What the previous version left: its database at migration 13 with version 2 uploaded, and the
    binary where files.py put it. Returns the binary's path."""
    data_dir.mkdir(mode=0o700)
    db = sqlite3.connect(data_dir / "fleetgate.db", isolation_level=None)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, sql in MIGRATIONS:
        if version <= 13:
            db.executescript(f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES ({version}, 0);\nCOMMIT;")
    sha256 = hashlib.sha256(image).hexdigest()
    db.execute("INSERT INTO products (id, slug, name, created_at) VALUES (?, 'lamp', 'Lamp', 0)", (P,))
    db.execute(
        "INSERT INTO firmware (product_id, version, title, size, sha256, platform_id, uploaded_at, uploaded_by)"
        " VALUES (?, 2, 'v2', ?, ?, 6, 0, 'user:admin')",
        (P, len(image), sha256),
    )
    db.close()
    path = data_dir / "firmware" / str(P) / f"2-{sha256[:16]}.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(image)
    return path


async def test_the_first_start_moves_old_binaries_into_the_store(tmp_path: Path, nursery: trio.Nursery) -> None:
    image = firmware.build(P, 2, 30_000, seed=7)
    old = old_data_dir(tmp_path / "data", image)
    api = await start_api(tmp_path, nursery)
    async with api.http:
        assert api.server.ctx.store.sync.firmware_blob(hashlib.sha256(image).hexdigest()) == image
        assert not old.exists() and not (tmp_path / "data" / "firmware").exists()  # moved, not copied
        download = await api.call("GET", f"/v1/products/{P}/firmware/2/binary")
        assert download.status_code == 200 and download.content == image
    api.server.shutdown()
