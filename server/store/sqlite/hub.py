"""What a product's devices hub reads besides the list: counts, the audit entry behind each
device's status, and who went offline lately (the change stream). A mixin of both stores (the SQL
is portable)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..records import AuditRecord, EventRecord, HubCounts
from ..sql import SqlConnection
from .device_events import device_events_sql

# Unary plus keeps the planner off audit_by_product, which it would otherwise pick for the ORDER BY
# and walk the product's whole trail (it grows with every connection); audit_by_device (device_id,
# id) finds a device's entries newest first. (SQLite documents `+column` for this; PostgreSQL reads
# it as the same value.)
_THIS_PRODUCT = "+product_id = ?"

# The audit actions that set a device's status in a product: admission decides at each connection,
# operators approve, pre-add, deny and remove.
STATUS_ACTIONS = ("admission", "approved", "preadded", "denied", "removed", "unlisted")


class HubQueries:
    _q: SqlConnection  # AdminQueries' property: the writer's connection inside a batch

    def hub_counts(self, product_id: int) -> HubCounts:
        # One pass over the product's members gives all three member counts.
        firmware = self._q.execute(
            "SELECT firmware_version, COUNT(*), COALESCE(SUM(online), 0) FROM devices WHERE product_id = ?"
            " GROUP BY firmware_version ORDER BY firmware_version",
            (product_id,),
        ).fetchall()
        lists = dict(
            self._q.execute(
                "SELECT state, COUNT(*) FROM product_devices WHERE product_id = ? GROUP BY state", (product_id,)
            ).fetchall()
        )
        return HubCounts(
            members=sum(int(n) for _, n, _ in firmware),
            online=sum(int(o) for _, _, o in firmware),
            quarantined=int(lists.get("quarantined", 0)),
            denied=int(lists.get("denied", 0)),
            by_firmware=tuple((None if v is None else int(v), int(n)) for v, n, _ in firmware),
        )

    def status_audit(self, product_id: int, device_ids: Sequence[str]) -> dict[str, AuditRecord]:
        """For each device, the latest audit entry of this product that set its status: one lookup
        per device on audit_by_device (one query for all of them would walk the product's trail)."""
        actions = ", ".join("?" * len(STATUS_ACTIONS))
        sql = (
            "SELECT id, at, actor, action, product_id, device_id, reason, detail FROM audit"
            f" WHERE device_id = ? AND {_THIS_PRODUCT} AND action IN ({actions}) ORDER BY id DESC LIMIT 1"
        )
        found: dict[str, AuditRecord] = {}
        for device_id in device_ids:
            row = self._q.execute(sql, (device_id, product_id, *STATUS_ACTIONS)).fetchone()
            if row is not None:
                i, at, actor, action, product, device, reason, detail = row
                found[device_id] = AuditRecord(i, at, actor, action, product, device, reason, json.loads(detail))
        return found

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
            f" WHERE device_id = ? AND {_THIS_PRODUCT} ORDER BY id DESC LIMIT ?",
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
            f" WHERE device_id = ? AND {_THIS_PRODUCT} AND action = 'admission' ORDER BY id DESC LIMIT 1",
            (device_id, product_id),
        ).fetchone()
        if row is None:
            return None
        i, at, actor, action, product, device, reason, detail = row
        return AuditRecord(i, at, actor, action, product, device, reason, json.loads(detail))

    def recent_device_events(self, product_id: int, device_id: str, limit: int) -> list[EventRecord]:
        """The device's latest events in the product's stream, newest first."""
        sql, args = device_events_sql(
            ("id", "name", "data", "ttl", "private", "published_at"), device_id,
            conditions=("+{e}product_id = ?",), condition_args=(product_id,), newest_first=True, limit=limit,
        )  # fmt: skip
        rows = self._q.execute(sql, args)
        return [
            EventRecord(device_id, n, bytes(data), ttl, bool(priv), at, product_id=product_id, id=i)
            for (i, n, data, ttl, priv, at) in rows
        ]
