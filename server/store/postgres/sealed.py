"""Opening a PostgreSQL database's sealed secrets at start: the key check (see ../sqlite/sealed.py).

A PostgreSQL database never held plain secrets (it starts at schema 12), so there is nothing to
upgrade: the first node to start records the check, under the write lock, and every node checks
its key against it.
"""

from __future__ import annotations

import time

from ..sealing import CannotOpen, Sealer
from ..secrets_key import SecretsKey, SecretsKeyError
from ..sqlite.webhooks import check_sealed_webhooks
from . import locks
from .connection import PgConnection

_CHECK_PLACE = "secrets_key_check"
_CHECK_TEXT = "fleetgate secrets key"


def start_sealing(w: PgConnection, where: str, source: SecretsKey) -> Sealer:
    """The database's Sealer, after checking `source`'s key against it (recording the check first)."""
    check = _key_check(w)
    sealer = Sealer(source.load(may_create=check is None))
    if check is None:
        w.execute("BEGIN")
        try:
            w.execute("SELECT pg_advisory_xact_lock(?)", (locks.WRITE,))
            check = _key_check(w)  # another node may have recorded it meanwhile
            if check is None:
                check = sealer.seal(_CHECK_TEXT, _CHECK_PLACE)
                w.execute(
                    "INSERT INTO secrets_key_check (id, sealed, created_at) VALUES (1, ?, ?)", (check, time.time())
                )
            w.execute("COMMIT")
        except BaseException:
            w.execute("ROLLBACK")
            raise
    try:
        if sealer.open(check, _CHECK_PLACE) != _CHECK_TEXT:
            raise CannotOpen(_CHECK_PLACE)
    except CannotOpen:
        raise SecretsKeyError(
            f"the secrets key from {source.where} is not the one {where} was sealed with: give that database's key"
        ) from None
    try:
        check_sealed_webhooks(w, sealer)
    except CannotOpen as exc:  # the key is right, so the row was altered
        raise SecretsKeyError(f"{where}: {exc}") from None
    return sealer


def _key_check(w: PgConnection) -> str | None:
    row = w.execute("SELECT sealed FROM secrets_key_check WHERE id = 1").fetchone()
    return None if row is None else str(row[0])
