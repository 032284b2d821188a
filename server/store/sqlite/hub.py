"""What a product's devices hub reads besides the list: counts, the audit entry behind each
device's status, and who went offline lately (the change stream). A mixin of both stores (the SQL
is portable)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..records import AuditRecord, EventRecord, HubCounts
from ..sql import SqlConnection

# The audit actions that set a device's status in a product: admission decides at each connection,
# operators approve, pre-add, deny and remove.
STATUS_ACTIONS = ("admission", "approved", "preadded", "denied", "removed", "unlisted")


class HubQueries:
    _q: SqlConnection  # AdminQueries' property: the writer's connection inside a batch

    def hub_counts(self, product_id: int) -> HubCounts:
        members, online = self._q.execute(
            "SELECT COUNT(*), COALESCE(SUM(online), 0) FROM devices WHERE product_id = ?", (product_id,)
        ).fetchone()
        lists = dict(
            self._q.execute(
                "SELECT state, COUNT(*) FROM product_devices WHERE product_id = ? GROUP BY state", (product_id,)
            ).fetchall()
        )
        firmware = self._q.execute(
            "SELECT firmware_version, COUNT(*) FROM devices WHERE product_id = ?"
            " GROUP BY firmware_version ORDER BY firmware_version",
            (product_id,),
        ).fetchall()
        return HubCounts(
            members=int(members),
            online=int(online),
            quarantined=int(lists.get("quarantined", 0)),
            denied=int(lists.get("denied", 0)),
            by_firmware=tuple((None if v is None else int(v), int(n)) for v, n in firmware),
        )

    def status_audit(self, product_id: int, device_ids: Sequence[str]) -> dict[str, AuditRecord]:
        """For each device, the latest audit entry of this product that set its status."""
        if not device_ids:
            return {}
        ids = ", ".join("?" * len(device_ids))
        actions = ", ".join("?" * len(STATUS_ACTIONS))
        rows = self._q.execute(
            "SELECT id, at, actor, action, product_id, device_id, reason, detail FROM audit WHERE id IN"
            f" (SELECT MAX(id) FROM audit WHERE product_id = ? AND device_id IN ({ids}) AND action IN ({actions})"
            " GROUP BY device_id)",
            [product_id, *device_ids, *STATUS_ACTIONS],
        )
        return {
            device: AuditRecord(i, at, actor, action, product, device, reason, json.loads(detail))
            for (i, at, actor, action, product, device, reason, detail) in rows
        }

    def went_offline(self, product_id: int, after: float) -> list[tuple[str, float]]:
        """The product's members that went offline after `after` (device ID, when), oldest first."""
        rows = self._q.execute(
            "SELECT device_id, last_heard FROM devices WHERE product_id = ? AND last_heard > ? AND online = 0"
            " ORDER BY last_heard",
            (product_id, after),
        )
        return [(str(d), float(t)) for d, t in rows]

    def latest_audit_id(self, product_id: int) -> int:
        """The newest audit entry of the product (0: none): where a change stream starts live."""
        (latest,) = self._q.execute("SELECT MAX(id) FROM audit WHERE product_id = ?", (product_id,)).fetchone()
        return int(latest or 0)

    def device_audit(self, product_id: int, device_id: str, limit: int) -> list[AuditRecord]:
        """The device's audit entries in this product, newest first."""
        rows = self._q.execute(
            "SELECT id, at, actor, action, product_id, device_id, reason, detail FROM audit"
            " WHERE device_id = ? AND product_id = ? ORDER BY id DESC LIMIT ?",
            (device_id, product_id, limit),
        )
        return [
            AuditRecord(i, at, actor, action, product, device, reason, json.loads(detail))
            for (i, at, actor, action, product, device, reason, detail) in rows
        ]

    def latest_admission(self, product_id: int, device_id: str) -> AuditRecord | None:
        """The device's latest admission decision in this product (what its connection was told)."""
        row = self._q.execute(
            "SELECT id, at, actor, action, product_id, device_id, reason, detail FROM audit"
            " WHERE device_id = ? AND product_id = ? AND action = 'admission' ORDER BY id DESC LIMIT 1",
            (device_id, product_id),
        ).fetchone()
        if row is None:
            return None
        i, at, actor, action, product, device, reason, detail = row
        return AuditRecord(i, at, actor, action, product, device, reason, json.loads(detail))

    def recent_device_events(self, product_id: int, device_id: str, limit: int) -> list[EventRecord]:
        """The device's latest events in the product's stream, newest first."""
        rows = self._q.execute(
            "SELECT id, name, data, ttl, private, published_at FROM events"
            " WHERE device_id = ? AND product_id = ? ORDER BY id DESC LIMIT ?",
            (device_id, product_id, limit),
        )
        return [
            EventRecord(device_id, n, bytes(data), ttl, bool(priv), at, product_id=product_id, id=i)
            for (i, n, data, ttl, priv, at) in rows
        ]
