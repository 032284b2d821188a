"""Numbered schema migrations. Append only: a released migration is never edited."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE devices (
            device_id TEXT PRIMARY KEY,          -- 24 lowercase hex characters
            public_key BLOB NOT NULL,            -- X25519 static public key, 32 bytes
            owner TEXT,
            platform_id INTEGER,
            product_id INTEGER,                  -- the product the cloud says it belongs to
            firmware_version INTEGER,
            created_at REAL NOT NULL,
            last_heard REAL,
            last_handshake_at REAL,
            online INTEGER NOT NULL DEFAULT 0,
            last_counter INTEGER NOT NULL DEFAULT 0  -- highest confirmed hello counter
        ) WITHOUT ROWID;

        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            device_id TEXT NOT NULL,
            product_id INTEGER,                  -- set when routed to the product stream
            name TEXT NOT NULL,
            data BLOB NOT NULL,
            ttl INTEGER NOT NULL,
            private INTEGER NOT NULL,
            published_at REAL NOT NULL
        );
        CREATE INDEX events_by_device ON events (device_id, id);
        """,
    ),
]
