"""Opening a database's sealed secrets at start: the key check, and sealing what an older
version stored in plain text (an idempotent upgrade step, gated by migration 12's key check).

The key check is a fixed value sealed with the database's key when it first seals anything. A
key that does not open it is the wrong key: start-up stops with one line (`SecretsKeyError`)
rather than serving webhooks whose secrets it cannot read or sealing new ones under a second key.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from ...logs import log_event
from ..sealing import CannotOpen, Sealer
from ..secrets_key import SecretsKey, SecretsKeyError
from ..sql import SqlConnection
from .webhooks import check_sealed_webhooks, seal_plain_webhooks

log = logging.getLogger("fleetgate.store")

KEY_CHECK_PLACE = "secrets_key_check"
KEY_CHECK_TEXT = "fleetgate secrets key"


def start_sealing(w: sqlite3.Connection, db: Path, source: SecretsKey) -> Sealer:
    """The database's Sealer, after checking `source`'s key against it (and sealing plain rows)."""
    check = key_check(w)
    sealer = Sealer(source.load(may_create=check is None))
    if check is None:
        _seal_everything(w, sealer)
        return sealer
    verify_key(w, sealer, check, source, str(db))
    return sealer


def verify_key(w: SqlConnection, sealer: Sealer, check: str, source: SecretsKey, where: str) -> None:
    """Raise SecretsKeyError unless `sealer` opens the database's key check and every sealed value in
    it (both engines, at start)."""
    try:
        if sealer.open(check, KEY_CHECK_PLACE) != KEY_CHECK_TEXT:
            raise CannotOpen(KEY_CHECK_PLACE)
    except CannotOpen:
        raise SecretsKeyError(
            f"the secrets key from {source.where} is not the one {where} was sealed with: give that database's key"
        ) from None
    try:
        check_sealed_webhooks(w, sealer)
    except CannotOpen as exc:  # the key is right, so the row was altered
        raise SecretsKeyError(f"{where}: {exc}") from None


def key_check(w: SqlConnection) -> str | None:
    """The database's sealed key check, if it has recorded one."""
    row = w.execute("SELECT sealed FROM secrets_key_check WHERE id = 1").fetchone()
    return None if row is None else str(row[0])


def _seal_everything(w: sqlite3.Connection, sealer: Sealer) -> None:
    """First start with a key: record the check and seal plain values, in one transaction, with
    secure_delete. If there were any, older plain text may linger where an older version left it
    (the space of deleted or replaced rows, where SQLite was built without secure_delete; the
    WAL): VACUUM rewrites the file once, and the WAL is emptied."""
    sealed = 0
    (previous,) = w.execute("PRAGMA secure_delete").fetchone()
    w.execute("PRAGMA secure_delete = ON")
    try:
        w.execute("BEGIN IMMEDIATE")
        try:
            if key_check(w) is None:  # another process may have sealed meanwhile
                sealed = seal_plain_webhooks(w, sealer)
                w.execute(
                    "INSERT INTO secrets_key_check (id, sealed, created_at) VALUES (1, ?, ?)",
                    (sealer.seal(KEY_CHECK_TEXT, KEY_CHECK_PLACE), time.time()),
                )
            w.execute("COMMIT")
        except BaseException:
            w.execute("ROLLBACK")
            raise
    finally:
        w.execute(f"PRAGMA secure_delete = {int(previous)}")
    if sealed:
        w.execute("VACUUM")  # once, on the upgrade of a database that held plain secrets
    w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if sealed:
        log_event(log, "secrets_sealed", webhooks=sealed)
