"""SQLite queries for durable webhook delivery: the dispatch cursor, delivery rows, the latest
attempts and the counters (a mixin of SQLiteStore; the tables are migration 11's)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from ..records import EventRecord
from ..sql import SqlConnection
from ..webhook_records import COUNTERS, Delivery, DeliveryAttempt, DeliveryCounters, DeliveryUpdate, DueDelivery

KEPT_ATTEMPTS = 20  # latest successes and latest errors kept per webhook

_DELIVERY = (
    "d.id, d.webhook_id, d.event_id, d.state, d.attempts, d.next_at, d.last_status, d.last_error,"
    " d.created_at, d.updated_at"
)
_EVENT = "e.id, e.device_id, e.product_id, e.name, e.data, e.ttl, e.private, e.published_at, e.to_device, e.webhooks"
_ATTEMPT = "webhook_id, event_id, at, attempt, status, duration_ms, error"


def _marks(values: Collection[object]) -> str:
    return ", ".join("?" * len(values))


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(*row)  # the columns in the record's order


def _event(row: Sequence[Any]) -> EventRecord | None:
    (i, d, p, n, data, ttl, priv, at, to, hooks) = row
    if i is None:
        return None
    return EventRecord(d, n, bytes(data), ttl, bool(priv), at, product_id=p, id=i, to_device=to, webhooks=bool(hooks))


class WebhookDeliveryQueries:
    _w: SqlConnection
    _q: SqlConnection  # AdminQueries' property: the writer's connection inside a batch

    # -- the dispatch cursor
    def webhook_cursor(self) -> int:
        (cursor,) = self._q.execute("SELECT cursor FROM webhook_dispatch WHERE id = 1").fetchone()
        return int(cursor)

    def events_for_webhooks(self, after_id: int, product_ids: Collection[int], limit: int) -> list[EventRecord]:
        if not product_ids:
            return []
        rows = self._q.execute(
            f"SELECT {_EVENT} FROM events AS e WHERE e.id > ? AND e.webhooks = 1"
            f" AND e.product_id IN ({_marks(product_ids)}) ORDER BY e.id LIMIT ?",
            (after_id, *product_ids, limit),
        )
        return [event for row in rows if (event := _event(row)) is not None]

    def products_with_webhooks(self) -> list[int]:
        return [p for (p,) in self._q.execute("SELECT DISTINCT product_id FROM webhooks ORDER BY product_id")]

    def last_event_id(self) -> int:
        (last,) = self._q.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        return int(last)

    def set_webhook_cursor(self, event_id: int) -> None:
        self._w.execute("UPDATE webhook_dispatch SET cursor = MAX(cursor, ?) WHERE id = 1", (event_id,))

    # -- deliveries
    def insert_deliveries(self, rows: Iterable[tuple[int, int]], at: float) -> int:
        """(webhook_id, event_id) pairs, due now; a pair already stored is left as it is."""
        made = 0
        for webhook_id, event_id in rows:
            cur = self._w.execute(
                "INSERT OR IGNORE INTO webhook_deliveries"
                " (webhook_id, event_id, state, next_at, created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?)",
                (webhook_id, event_id, at, at, at),
            )
            if cur.rowcount:
                made += 1
                self._count(webhook_id, ("triggered",))
        return made

    def pending_deliveries(
        self, webhook_ids: Collection[int], limit: int, skip: Collection[int] = ()
    ) -> list[DueDelivery]:
        """Pending deliveries of these webhooks, the soonest due first, with their events. One indexed
        range per webhook, merged here: however many are pending, no more than `limit` rows each are read."""
        if limit <= 0:
            return []
        skipping = f" AND d.id NOT IN ({_marks(skip)})" if skip else ""
        sql = (
            f"SELECT {_DELIVERY}, {_EVENT} FROM webhook_deliveries AS d LEFT JOIN events AS e ON e.id = d.event_id"
            f" WHERE d.webhook_id = ? AND d.state = 'pending'{skipping} ORDER BY d.next_at, d.id LIMIT ?"
        )
        found = [
            DueDelivery(_delivery(row[:10]), _event(row[10:]))
            for webhook_id in webhook_ids
            for row in self._q.execute(sql, (webhook_id, *skip, limit))
        ]
        found.sort(key=lambda due: (due.delivery.next_at, due.delivery.id))
        return found[:limit]

    def update_delivery(self, update: DeliveryUpdate) -> None:
        """Nothing when the delivery is gone (its webhook was deleted while the request ran)."""
        cur = self._w.execute(
            "UPDATE webhook_deliveries SET state = ?, attempts = ?, next_at = ?, last_status = ?, last_error = ?,"
            " updated_at = ? WHERE id = ?",
            (update.state, update.attempts, update.next_at, update.status, update.error, update.at,
             update.delivery_id),
        )  # fmt: skip
        if cur.rowcount == 0:
            return
        if update.attempt is not None:
            self._record_attempt(update.attempt)
        self._count(update.webhook_id, update.counts)

    def prune_deliveries(self, succeeded_before: float, failed_before: float, limit: int) -> int:
        """Delete up to `limit` finished deliveries older than their retention; how many went."""
        cur = self._w.execute(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries"
            " WHERE (state = 'succeeded' AND updated_at < ?) OR (state = 'failed' AND updated_at < ?) LIMIT ?)",
            (succeeded_before, failed_before, limit),
        )
        return cur.rowcount

    def get_deliveries(self, webhook_id: int, state: str, limit: int) -> list[Delivery]:
        """The latest deliveries of a webhook in this state, oldest first."""
        rows = self._q.execute(
            f"SELECT {_DELIVERY} FROM webhook_deliveries AS d WHERE d.webhook_id = ? AND d.state = ?"
            " ORDER BY d.updated_at DESC, d.id DESC LIMIT ?",
            (webhook_id, state, limit),
        ).fetchall()
        return [_delivery(row) for row in reversed(rows)]

    # -- the history and the counters
    def latest_attempts(self, webhook_id: int, ok: bool) -> list[DeliveryAttempt]:
        """The latest successful (or failed) requests, oldest first."""
        rows = self._q.execute(
            f"SELECT {_ATTEMPT} FROM webhook_attempts WHERE webhook_id = ? AND ok = ? ORDER BY id DESC LIMIT ?",
            (webhook_id, int(ok), KEPT_ATTEMPTS),
        ).fetchall()
        return [DeliveryAttempt(*row) for row in reversed(rows)]

    def webhook_counters(self, webhook_ids: Collection[int]) -> dict[int, DeliveryCounters]:
        found = {i: DeliveryCounters() for i in webhook_ids}
        if not found:
            return found
        marks = _marks(found)
        pending = dict(
            self._q.execute(
                f"SELECT webhook_id, COUNT(*) FROM webhook_deliveries WHERE webhook_id IN ({marks})"
                " AND state = 'pending' GROUP BY webhook_id",
                tuple(found),
            ).fetchall()
        )
        rows = self._q.execute(
            f"SELECT webhook_id, {', '.join(COUNTERS)} FROM webhook_counters WHERE webhook_id IN ({marks})",
            tuple(found),
        )
        for webhook_id, *counts in rows:
            found[webhook_id] = DeliveryCounters(*counts)
        return {i: _with_pending(c, pending.get(i, 0)) for i, c in found.items()}

    def _record_attempt(self, attempt: DeliveryAttempt) -> None:
        ok = int(not attempt.error)
        self._w.execute(
            f"INSERT INTO webhook_attempts ({_ATTEMPT}, ok) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (attempt.webhook_id, attempt.event_id, attempt.at, attempt.attempt, attempt.status,
             attempt.duration_ms, attempt.error, ok),
        )  # fmt: skip
        self._w.execute(
            "DELETE FROM webhook_attempts WHERE webhook_id = ? AND ok = ? AND id <= (SELECT id FROM webhook_attempts"
            " WHERE webhook_id = ? AND ok = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (attempt.webhook_id, ok, attempt.webhook_id, ok, KEPT_ATTEMPTS),
        )

    def _count(self, webhook_id: int, names: Sequence[str]) -> None:
        if not names:
            return
        assert all(name in COUNTERS for name in names)  # column names: ours, never input
        columns = ", ".join(names)
        updates = ", ".join(f"{n} = webhook_counters.{n} + excluded.{n}" for n in names)  # (PostgreSQL: qualified)
        self._w.execute(
            f"INSERT INTO webhook_counters (webhook_id, {columns}) VALUES (?{', 1' * len(names)})"
            f" ON CONFLICT (webhook_id) DO UPDATE SET {updates}",
            (webhook_id,),
        )


def _with_pending(counters: DeliveryCounters, pending: int) -> DeliveryCounters:
    return DeliveryCounters(counters.triggered, counters.sent, counters.succeeded, counters.retried, counters.failed,
                            counters.refused, counters.dropped, pending)  # fmt: skip
