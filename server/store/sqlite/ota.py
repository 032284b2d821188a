"""SQLite queries for per-device OTA outcomes (a mixin of SQLiteStore; see admin.py)."""

from __future__ import annotations

from ..records import OtaOutcome
from ..sql import SqlConnection


class OtaQueries:
    _w: SqlConnection
    _q: SqlConnection  # AdminQueries' property: the writer's connection inside a batch

    def ota_outcome(self, device_id: str) -> OtaOutcome | None:
        row = self._q.execute(
            "SELECT device_id, product_id, version, state, reason, updated_at FROM device_ota WHERE device_id = ?",
            (device_id,),
        ).fetchone()
        return OtaOutcome(*row) if row else None

    def set_ota_outcome(self, outcome: OtaOutcome) -> None:
        self._w.execute(
            "INSERT INTO device_ota (device_id, product_id, version, state, reason, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET product_id = excluded.product_id,"
            " version = excluded.version, state = excluded.state, reason = excluded.reason,"
            " updated_at = excluded.updated_at",
            (outcome.device_id, outcome.product_id, outcome.version, outcome.state, outcome.reason, outcome.updated_at),
        )
