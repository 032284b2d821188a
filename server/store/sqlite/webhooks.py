"""SQLite queries for product webhooks (a mixin of SQLiteStore; see admin.py)."""

from __future__ import annotations

import json
import sqlite3

from ...rules.webhook_model import Webhook, WebhookSpec, spec_from_json, spec_to_json


class WebhookQueries:
    _w: sqlite3.Connection
    _q: sqlite3.Connection  # AdminQueries' property: the writer's connection inside a batch

    def list_webhooks(self, product_id: int | None = None) -> list[Webhook]:
        sql = "SELECT id, product_id, spec, secret, created_at, created_by FROM webhooks"
        rows = (
            self._q.execute(sql + " ORDER BY id")
            if product_id is None
            else self._q.execute(sql + " WHERE product_id = ? ORDER BY id", (product_id,))
        )
        return [
            Webhook(i, p, spec_from_json(json.loads(spec)), secret, at, by) for (i, p, spec, secret, at, by) in rows
        ]

    def insert_webhook(self, product_id: int, spec: WebhookSpec, secret: str, at: float, by: str) -> int:
        cur = self._w.execute(
            "INSERT INTO webhooks (product_id, spec, secret, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
            (product_id, json.dumps(spec_to_json(spec)), secret, at, by),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update_webhook(self, webhook_id: int, spec: WebhookSpec) -> None:
        self._w.execute("UPDATE webhooks SET spec = ? WHERE id = ?", (json.dumps(spec_to_json(spec)), webhook_id))

    def delete_webhook(self, webhook_id: int) -> None:
        self._w.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
