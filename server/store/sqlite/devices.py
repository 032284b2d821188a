"""Device rows and the event log's reads: the queries both engines share (a mixin of SQLiteStore and,
through store/sql.py's adapter, of PostgresStore, which names its `GREATEST` in `_GREATEST`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from ..records import DeviceRecord, EventRecord, ImportResult
from ..sql import SqlConnection
from .device_events import EVENT_COLUMNS, crosses_index_step, device_events_sql, index_device_events
from .rows import DEVICE_COLUMNS, device_from_row, paged_by_id, window_by_id


class DeviceQueries:
    _w: SqlConnection
    _q: SqlConnection
    _GREATEST: ClassVar[str] = "MAX"  # SQLite's scalar MAX is the larger of its arguments

    @property
    def schema_version(self) -> int:
        (v,) = self._q.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        return int(v)

    def get_device(self, device_id: str) -> DeviceRecord | None:
        row = self._q.execute(f"SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return device_from_row(row) if row else None

    def list_devices(self) -> list[DeviceRecord]:
        rows = self._q.execute(f"SELECT {DEVICE_COLUMNS} FROM devices ORDER BY created_at, device_id")
        return [device_from_row(r) for r in rows]

    def list_events(
        self, device_id: str | None = None, after_id: int = 0, limit: int = 1000, product_id: int | None = None
    ) -> list[EventRecord]:
        if device_id is not None:
            of_product = () if product_id is None else ("{e}product_id = ?",)
            sql, args = device_events_sql(
                EVENT_COLUMNS, device_id, after_id=after_id, conditions=of_product,
                condition_args=() if product_id is None else (product_id,), limit=limit,
            )  # fmt: skip
        else:
            sql, args = paged_by_id(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events", {"product_id": product_id}, after_id, limit
            )
        return [
            EventRecord(d, n, bytes(data), ttl, bool(priv), at, product_id=p, id=i, to_device=to, webhooks=bool(h))
            for (i, d, p, n, data, ttl, priv, at, to, h) in self._q.execute(sql, args)
        ]

    def event_history(
        self,
        product_id: int,
        *,
        device_id: str | None = None,
        prefix: str | None = None,
        after_id: int = 0,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Events routed to the product's stream, oldest first: after `after_id`, or the `limit` just
        before `before_id`; of one device, and with a name prefix, when given."""
        if device_id is not None:
            conditions: tuple[str, ...] = ("{e}product_id = ?",)
            condition_args: tuple[object, ...] = (product_id,)
            if prefix:
                conditions += ("substr({e}name, 1, ?) = ?",)
                condition_args += (len(prefix), prefix)
            sql, args = device_events_sql(
                EVENT_COLUMNS, device_id, after_id=after_id, before_id=before_id, conditions=conditions,
                condition_args=condition_args, newest_first=before_id is not None, limit=limit,
            )  # fmt: skip
            reverse = before_id is not None
        else:
            sql, args, reverse = window_by_id(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events", {"product_id": product_id},
                after_id=after_id, before_id=before_id, limit=limit, name_prefix=prefix,
            )  # fmt: skip
        out = [
            EventRecord(d, n, bytes(data), ttl, bool(priv), at, product_id=p, id=i, to_device=to, webhooks=bool(h))
            for (i, d, p, n, data, ttl, priv, at, to, h) in self._q.execute(sql, args)
        ]
        return out[::-1] if reverse else out

    def add_device_keys(self, rows: Iterable[tuple[str, bytes]], now: float) -> ImportResult:
        result = ImportResult()
        w = self._w
        for device_id, public_key in rows:
            existing = w.execute("SELECT public_key FROM devices WHERE device_id = ?", (device_id,)).fetchone()
            if existing is None:
                w.execute(
                    "INSERT INTO devices (device_id, public_key, created_at) VALUES (?, ?, ?)",
                    (device_id, public_key, now),
                )
                result.added.append(device_id)
            elif existing[0] is None:  # pre-added to a product before its key was known
                w.execute("UPDATE devices SET public_key = ? WHERE device_id = ?", (public_key, device_id))
                result.added.append(device_id)
            elif bytes(existing[0]) == public_key:
                result.unchanged.append(device_id)
            else:
                result.errors.append((device_id, "already registered with a different public key"))
        return result

    def mark_connected(
        self,
        device_id: str,
        *,
        counter: int,
        firmware_version: int,
        platform_id: int,
        firmware_product_id: int | None,
        at: float,
    ) -> None:
        self._w.execute(
            "UPDATE devices SET online = 1, last_heard = ?, last_handshake_at = ?, firmware_version = ?,"
            f" platform_id = ?, firmware_product_id = ?, last_counter = {self._GREATEST}(last_counter, ?)"
            " WHERE device_id = ?",
            (at, at, firmware_version, platform_id, firmware_product_id, counter, device_id),
        )

    def mark_disconnected(self, device_id: str, at: float) -> None:
        self._w.execute("UPDATE devices SET online = 0, last_heard = ? WHERE device_id = ?", (at, device_id))

    def index_device_events_if_due(self, first_id: int, last_id: int) -> None:
        if crosses_index_step(first_id, last_id):
            index_device_events(self._w)
