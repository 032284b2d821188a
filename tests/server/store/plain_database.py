"""A database as the versions before sealing left it: schema up to migration 10, webhook secrets
and passwords in plain text, written the way their store wrote them."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from server.rules.webhook_model import Auth, WebhookSpec, spec_to_json
from server.store.sqlite.migrations import MIGRATIONS

LAST_PLAIN_VERSION = 10
DELETED_SECRET = "de" * 32  # of a webhook deleted before the upgrade


def make_plain_database(path: Path, product_id: int, hooks: list[tuple[WebhookSpec, str]]) -> list[int]:
    """Create `path` with one product and `hooks` (spec, secret); their IDs. Each webhook's
    password is first stored as 'replaced-' + its password and then replaced, as an operator's
    edit would, and 40 large webhooks with DELETED_SECRET are deleted (whole pages freed), with
    SQLite's secure_delete off (as builds without SQLITE_SECURE_DELETE have it), so that older
    plain text lingers in free space."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, sql in MIGRATIONS:
        if version <= LAST_PLAIN_VERSION:
            conn.executescript(f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES ({version}, 0);\nCOMMIT;")
    conn.execute(
        "INSERT INTO products (id, slug, name, policy, created_at) VALUES (?, 'meter', 'Meter', 'quarantine', ?)",
        (product_id, time.time()),
    )
    ids: list[int] = []
    for spec, secret in hooks:
        first = spec
        if spec.auth is not None:
            first = WebhookSpec(spec.event, spec.url, auth=Auth(spec.auth.username, "replaced-" + spec.auth.password))
        cur = conn.execute(
            "INSERT INTO webhooks (product_id, spec, secret, created_at, created_by) VALUES (?, ?, ?, ?, 'user:admin')",
            (product_id, json.dumps(spec_to_json(first)), secret, time.time()),
        )
        assert cur.lastrowid is not None
        conn.execute("UPDATE webhooks SET spec = ? WHERE id = ?", (json.dumps(spec_to_json(spec)), cur.lastrowid))
        ids.append(cur.lastrowid)
    conn.executemany(
        "INSERT INTO webhooks (product_id, spec, secret, created_at, created_by) VALUES (?, ?, ?, 0, 'user:admin')",
        [(product_id, json.dumps({"body": "x" * 3000}), DELETED_SECRET)] * 40,
    )
    conn.execute("DELETE FROM webhooks WHERE secret = ?", (DELETED_SECRET,))
    conn.close()
    return ids


def on_disk(db: Path) -> bytes:
    """Every byte SQLite keeps for the database: the file, its WAL and its shared-memory index."""
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
                    if p.exists())  # fmt: skip
