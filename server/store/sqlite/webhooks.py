"""SQLite queries for product webhooks (a mixin of SQLiteStore; see admin.py).

The signing secret and the basic-auth password are sealed (`store/sealing.py`) on the way in and
opened on the way out, each bound to its row and column: nothing above the store sees ciphertext.
"""

from __future__ import annotations

import json
from typing import Any

from ...rules.webhook_model import Webhook, WebhookSpec, spec_from_json, spec_to_json
from ..sealing import CannotOpen, Sealer, is_sealed
from ..sql import SqlConnection


def secret_place(webhook_id: int) -> str:
    return f"webhooks/{webhook_id}/secret"


def password_place(webhook_id: int) -> str:
    return f"webhooks/{webhook_id}/auth.password"


class WebhookQueries:
    _w: SqlConnection
    _q: SqlConnection  # AdminQueries' property: the writer's connection inside a batch
    _sealer: Sealer

    def list_webhooks(self, product_id: int | None = None) -> list[Webhook]:
        sql = "SELECT id, product_id, spec, secret, created_at, created_by FROM webhooks"
        rows = (
            self._q.execute(sql + " ORDER BY id")
            if product_id is None
            else self._q.execute(sql + " WHERE product_id = ? ORDER BY id", (product_id,))
        )
        opener = self._sealer
        return [
            Webhook(i, p, spec_from_json(open_spec(opener, i, spec)), opener.open(secret, secret_place(i)), at, by)
            for (i, p, spec, secret, at, by) in rows
        ]

    def insert_webhook(self, product_id: int, spec: WebhookSpec, secret: str, at: float, by: str) -> int:
        # The ID is chosen first, as SQLite would (one above the largest), because the sealed values
        # are bound to it; the writer's transaction holds the write lock between the two statements.
        (webhook_id,) = self._w.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM webhooks").fetchone()
        self._w.execute(
            "INSERT INTO webhooks (id, product_id, spec, secret, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
            (
                webhook_id,
                product_id,
                seal_spec(self._sealer, webhook_id, spec_to_json(spec)),
                self._sealer.seal(secret, secret_place(webhook_id)),
                at,
                by,
            ),
        )
        return int(webhook_id)

    def update_webhook(self, webhook_id: int, spec: WebhookSpec) -> None:
        sealed = seal_spec(self._sealer, webhook_id, spec_to_json(spec))
        self._w.execute("UPDATE webhooks SET spec = ? WHERE id = ?", (sealed, webhook_id))

    def delete_webhook(self, webhook_id: int) -> None:
        self._w.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))


def seal_spec(sealer: Sealer, webhook_id: int, data: dict[str, Any]) -> str:
    """The stored JSON of a spec, its auth password sealed."""
    auth = data.get("auth")
    if auth is not None:
        data = {**data, "auth": {**auth, "password": sealer.seal(auth["password"], password_place(webhook_id))}}
    return json.dumps(data)


def open_spec(sealer: Sealer, webhook_id: int, stored: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stored)
    auth = data.get("auth")
    if auth is not None:
        data["auth"] = {**auth, "password": sealer.open(auth["password"], password_place(webhook_id))}
    return data


def seal_plain_webhooks(w: SqlConnection, sealer: Sealer) -> int:
    """Seal what an older version stored in plain text, inside the caller's transaction; the
    number of webhooks changed. A value that already opens is left as it is, so this is idempotent."""
    changed = 0
    for webhook_id, stored, secret in w.execute("SELECT id, spec, secret FROM webhooks").fetchall():
        data: dict[str, Any] = json.loads(stored)
        auth = data.get("auth")
        password = None if auth is None else _plain(sealer, auth["password"], password_place(webhook_id))
        plain_secret = _plain(sealer, secret, secret_place(webhook_id))
        if password is None and plain_secret is None:
            continue
        if auth is not None and password is not None:
            data["auth"] = {**auth, "password": password}
            stored = seal_spec(sealer, webhook_id, data)
        if plain_secret is not None:
            secret = sealer.seal(plain_secret, secret_place(webhook_id))
        w.execute("UPDATE webhooks SET spec = ?, secret = ? WHERE id = ?", (stored, secret, webhook_id))
        changed += 1
    return changed


def check_sealed_webhooks(w: SqlConnection, sealer: Sealer) -> None:
    """Open every sealed value once (CannotOpen names the first that does not)."""
    for webhook_id, stored, secret in w.execute("SELECT id, spec, secret FROM webhooks"):
        sealer.open(secret, secret_place(webhook_id))
        open_spec(sealer, webhook_id, stored)


def _plain(sealer: Sealer, value: str, place: str) -> str | None:
    """`value` if it is plain text still to be sealed; None if it is sealed for this place already."""
    if is_sealed(value):
        try:
            sealer.open(value, place)
            return None
        except CannotOpen:
            pass  # plain text that happens to start like a sealed value
    return value
