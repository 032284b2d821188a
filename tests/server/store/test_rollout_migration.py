"""Migration 10: rollouts lose their foreign key to firmware, and keep every row they had."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.store import SQLiteStore
from server.store.sqlite.migrations import MIGRATIONS


def test_rollouts_keep_their_rows_and_no_longer_pin_firmware(tmp_path: Path) -> None:
    path = tmp_path / "fleetgate.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA foreign_keys=ON")
    old.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, sql in MIGRATIONS:
        if version < 10:
            old.executescript(f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES ({version}, 0);\nCOMMIT;")
    old.executescript(
        """
        INSERT INTO products (id, slug, name, created_at) VALUES (7, 'p', 'P', 0);
        INSERT INTO firmware (product_id, version, title, size, sha256, platform_id, uploaded_at, uploaded_by)
            VALUES (7, 2, 'v2', 1, 'ab', 6, 0, 'user:admin');
        INSERT INTO rollouts (id, product_id, version, target, settings, state, created_at, created_by, updated_at)
            VALUES (3, 7, 2, '{}', '{}', 'aborted', 0, 'user:admin', 0);
        INSERT INTO rollout_devices (rollout_id, device_id, position, stage, state, from_version, updated_at)
            VALUES (3, 'aa', 0, 0, 'skipped', 1, 0);
        """
    )
    old.close()

    store = SQLiteStore(path)
    assert store.schema_version >= 10
    with store._w:
        assert store.delete_firmware(7, 2)
    assert store._w.execute("SELECT id, version, state FROM rollouts").fetchall() == [(3, 2, "aborted")]
    assert store._w.execute("SELECT rollout_id, device_id, from_version FROM rollout_devices").fetchall() == [
        (3, "aa", 1)
    ]
    store._w.execute("DELETE FROM rollouts WHERE id = 3")  # the cascade to rollout_devices survived the rebuild
    assert store._w.execute("SELECT COUNT(*) FROM rollout_devices").fetchone() == (0,)
    store.close()
