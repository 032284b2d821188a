"""Opening a PostgreSQL database's sealed secrets at start: the key check (see ../sqlite/sealed.py).

A PostgreSQL database never held plain secrets (it starts at schema 12), so there is nothing to
upgrade: the first node to start records the check, under the write lock, and every node checks
its key against it.
"""

from __future__ import annotations

import time

from ..sealing import Sealer
from ..secrets_key import SecretsKey
from ..sqlite.sealed import KEY_CHECK_PLACE, KEY_CHECK_TEXT, key_check, verify_key
from . import locks
from .connection import PgConnection


def start_sealing(w: PgConnection, where: str, source: SecretsKey) -> Sealer:
    """The database's Sealer, after checking `source`'s key against it (recording the check first)."""
    check = key_check(w)
    sealer = Sealer(source.load(may_create=check is None))
    if check is None:
        w.execute("BEGIN")
        try:
            w.execute("SELECT pg_advisory_xact_lock(?)", (locks.WRITE,))
            check = key_check(w)  # another node may have recorded it meanwhile
            if check is None:
                check = sealer.seal(KEY_CHECK_TEXT, KEY_CHECK_PLACE)
                w.execute(
                    "INSERT INTO secrets_key_check (id, sealed, created_at) VALUES (1, ?, ?)", (check, time.time())
                )
            w.execute("COMMIT")
        except BaseException:
            w.execute("ROLLBACK")
            raise
    verify_key(w, sealer, check, source, where)
    return sealer
