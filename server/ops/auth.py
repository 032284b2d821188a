"""API credentials: bearer tokens (stored only as SHA-256), scopes, and the first-run admin.

A token is `secrets.token_hex(20)`: 160 random bits, so one fast hash is enough to store it
(no salt or slow hash needed, unlike passwords, which people choose).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from pathlib import Path

from ..link.keys import write_private
from ..logs import log_event, now
from ..rules.errors import Conflict, Invalid
from ..rules.passwords import hash_password
from ..store import Store
from ..store.records import TokenRecord
from ..store.tx import StoreTx

log = logging.getLogger("fleetgate.auth")

ALL_SCOPES = "*"
SCOPES = frozenset(
    {
        "products:read",
        "products:write",
        "devices:read",
        "devices:write",
        "team:write",
        "customers:write",
        "audit:read",
        "firmware:read",
        "firmware:write",
        "events:write",
        "webhooks:read",
        "webhooks:write",
        "provisioning:write",
        "users:write",
    }
)
FIRST_ADMIN = "admin"
FIRST_RUN_CLIENT = "first-run"

_TOKEN = re.compile(r"^[0-9a-f]{40}$")


def new_token() -> str:
    return secrets.token_hex(20)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def looks_like_token(text: str) -> bool:
    """Cheap shape check before any lookup: anything else cannot be one of our tokens."""
    return bool(_TOKEN.match(text))


def token_id(token_hash: bytes) -> str:
    """A public handle for a token (what listings show): its hash prefix, never the token."""
    return token_hash.hex()[:12]


def parse_scopes(text: str | None) -> frozenset[str]:
    """Space-separated scopes; empty or absent means everything the holder may do."""
    names = frozenset((text or "").split())
    if not names or ALL_SCOPES in names:
        return frozenset({ALL_SCOPES})
    unknown = sorted(names - SCOPES)
    if unknown:
        raise Invalid(f"unknown scope {unknown[0]!r}; known: {' '.join(sorted(SCOPES))}", "scope")
    return names


def bootstrap_admin(store: Store, token_path: Path, password: str | None = None) -> Path | None:
    """On the first run (no users at all) create `admin` with a non-expiring all-scope token
    written to `token_path` (0600), and `password` (stored hashed; None: a random one nobody
    learns). Returns the path when it did; later runs change nothing.

    Runs before the server's writer service starts, so it writes through the store's own
    transaction. The file is written inside it, after the check and before the commit: if we
    crash in between, the next run still sees no users and replaces the file, so the file never
    holds a stale token. Servers starting together on one database (PostgreSQL) take turns in
    that transaction: the first creates the admin, the others find it there and change nothing."""
    if store.list_users():
        return None
    token = new_token()
    password = password or secrets.token_urlsafe(24)  # without one, nobody learns it: the admin uses the token
    at = now()

    def tx(s: StoreTx) -> bool:
        if s.list_users():
            return False  # another server made the first admin meanwhile
        token_path.unlink(missing_ok=True)
        write_private(token_path, token + "\n")
        user = s.insert_user(FIRST_ADMIN, hash_password(password), True, at)
        s.insert_token(
            TokenRecord(hash_token(token), user.id, None, frozenset({ALL_SCOPES}), FIRST_RUN_CLIENT, at, None)
        )
        s.append_audit(at, "system", "user_created", detail={"username": FIRST_ADMIN, "admin": True})
        return True

    try:
        created = store.transact(tx)
    except Exception:
        token_path.unlink(missing_ok=True)
        raise
    if not created:
        return None
    log_event(log, "admin_created", username=FIRST_ADMIN, token_path=str(token_path))
    return token_path


def first_run_password() -> str:
    """The first admin's password, printed once by `fleetgate serve` for the web console's login."""
    return secrets.token_urlsafe(12)


def reissue_admin_token(store: Store, token_path: Path) -> tuple[str, Path]:
    """Recovery for whoever holds the data directory: a new all-scope token for the first server
    admin, written to `token_path` (0600), e.g. after its only token was revoked. Runs beside a
    running server (SQLite takes the write; the server reads the new token on its next lookup)."""
    admins = [u for u in store.list_users() if u.is_admin]
    if not admins:
        raise Conflict("there is no server admin yet: start the server once (`fleetgate serve`)")
    admin = min(admins, key=lambda u: u.id)
    token, at = new_token(), now()

    def tx(s: StoreTx) -> None:
        s.insert_token(TokenRecord(hash_token(token), admin.id, None, frozenset({ALL_SCOPES}), "recovery", at, None))
        s.append_audit(at, "system", "admin_token_reissued", detail={"username": admin.username})

    store.transact(tx)
    token_path.unlink(missing_ok=True)
    write_private(token_path, token + "\n")
    log_event(log, "admin_token_reissued", username=admin.username, token_path=str(token_path))
    return admin.username, token_path
