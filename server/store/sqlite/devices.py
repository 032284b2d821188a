"""Device rows and the event log's reads: the queries both engines share (a mixin of SQLiteStore and,
through store/sql.py's adapter, of PostgresStore, which names its `GREATEST` in `_GREATEST`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from ..records import DeviceRecord, EventRecord, ImportResult
from ..sql import SqlConnection
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
        sql, args = paged_by_id(
            "SELECT id, device_id, product_id, name, data, ttl, private, published_at, to_device, webhooks FROM events",
            {"device_id": device_id, "product_id": product_id},
            after_id,
            limit,
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
        sql, args, reverse = window_by_id(
            "SELECT id, device_id, product_id, name, data, ttl, private, published_at, to_device, webhooks FROM events",
            {"product_id": product_id, "device_id": device_id},
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
