"""The advisory lock keys of Fleetgate's PostgreSQL store (one 64-bit key space per database).

WRITE is held by every write batch to its commit (`pg_advisory_xact_lock`): batches of every node
apply one after another, which is what the read-check-write ops assume (as SQLite's BEGIN
IMMEDIATE gave them), and events get IDs in commit order. MIGRATE is held while migrating.
"""

from __future__ import annotations

_BASE = 0x466C_6774_0000_0000  # "Flgt" in the high half: apart from other applications' keys

WRITE = _BASE + 1
MIGRATE = _BASE + 2
