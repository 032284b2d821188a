"""Queries whose SQLite text PostgreSQL cannot run as translated (connection.py): generated IDs
(`RETURNING id` for `lastrowid`), `string_agg` for `group_concat` (with plain `?` for `?1`), and
no LIMIT for SQLite's -1. A mixin placed before the shared ones in PostgresStore's bases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ...rules.admission import DeviceFacts, ProductFacts
from ...rules.rollout_model import RolloutDevice
from ..records import DeviceRecord, FirmwareTargetFacts, OfferFacts
from ..sql import SqlConnection
from ..sqlite.admin import admission_facts_of, admission_rows_many, epoch_of
from ..sqlite.firmware import _release, offer_facts_of
from ..sqlite.rollouts import _DEVICE_COLUMNS, _device
from ..sqlite.rows import DEVICE_COLUMNS

_D_DEVICE = ", ".join(f"d.{c.strip()}" for c in DEVICE_COLUMNS.split(","))
_ADMISSION_FACTS = (
    f"SELECT {_D_DEVICE}, p.id, p.policy, l.state,"
    " (SELECT string_agg(t.user_id::text, ',') FROM team t WHERE t.product_id = p.id)"
    " FROM (SELECT 1) AS one LEFT JOIN devices d ON d.device_id = ?"
    " LEFT JOIN products p ON p.id = ?"
    " LEFT JOIN product_devices l ON l.product_id = p.id AND l.device_id = ?"
)
_ADMISSION_FACTS_AT = _ADMISSION_FACTS.replace("SELECT ", "SELECT (SELECT n FROM admission_epoch), ", 1)
# sqlite/admin.py's _ADMISSION_FACTS_MANY in PostgreSQL's spelling.
_ADMISSION_FACTS_MANY = (
    "WITH k(i, dev, prod) AS (VALUES {values})"
    f" SELECT (SELECT n FROM admission_epoch), {_D_DEVICE}, p.id, p.policy, l.state,"
    " (SELECT string_agg(t.user_id::text, ',') FROM team t WHERE t.product_id = p.id)"
    " FROM k LEFT JOIN devices d ON d.device_id = k.dev"
    " LEFT JOIN products p ON p.id = k.prod"
    " LEFT JOIN product_devices l ON l.product_id = p.id AND l.device_id = k.dev ORDER BY k.i"
)
# sqlite/firmware.py's _OFFER_FACTS in PostgreSQL's spelling: the arguments in order of use.
_OFFER_FACTS = (
    "SELECT d.development,"
    " (SELECT version FROM firmware_locks WHERE product_id = ? AND device_id = ?),"
    " (SELECT rd.assigned_version FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id"
    "  WHERE rd.device_id = ? AND r.product_id = ? AND rd.assigned_version IS NOT NULL"
    "  ORDER BY rd.rollout_id DESC LIMIT 1),"
    " (SELECT string_agg(fr.version::text, ',') FROM firmware_releases fr JOIN device_groups g ON g.id = fr.group_id"
    "  JOIN device_group_members m ON m.group_id = g.id WHERE fr.product_id = ? AND g.product_id = ?"
    "  AND m.device_id = ?),"
    " (SELECT version FROM firmware_releases WHERE product_id = ? AND group_id IS NULL),"
    " o.version, o.reason"
    " FROM (SELECT 1) AS one LEFT JOIN devices d ON d.device_id = ? LEFT JOIN device_ota o ON o.device_id = ?"
)


# The lock, the groups and the releases of FirmwareQueries.firmware_target_facts in one statement:
# one row per release of the product (one with NULLs where it has none).
_TARGET_FACTS = (
    "SELECT (SELECT version FROM firmware_locks WHERE product_id = ? AND device_id = ?),"
    " ARRAY(SELECT g.name FROM device_group_members m JOIN device_groups g ON g.id = m.group_id"
    " WHERE g.product_id = ? AND m.device_id = ? ORDER BY g.name),"
    " r.product_id, r.version, g.name, r.intelligent, r.released_at, r.released_by"
    " FROM (SELECT 1) AS one LEFT JOIN (firmware_releases r LEFT JOIN device_groups g ON g.id = r.group_id)"
    " ON r.product_id = ? ORDER BY r.version, g.name"
)


class PostgresQueries:
    _w: SqlConnection
    _q: SqlConnection
    _GREATEST: ClassVar[str] = "GREATEST"  # for DeviceQueries.mark_connected

    def _insert_id(self, sql: str, args: Sequence[object]) -> int:
        (row_id,) = self._w.execute(sql + " RETURNING id", args).fetchone()
        return int(row_id)

    def admission_facts(
        self, device_id: str, fw_product_id: int | None
    ) -> tuple[DeviceRecord | None, DeviceFacts, ProductFacts | None]:
        """As AdminQueries', in PostgreSQL's spelling (one query: it runs for every connection)."""
        if fw_product_id is not None and not 0 <= fw_product_id < 2**63:
            fw_product_id = None  # no such product: bigint would refuse the value itself
        row = self._q.execute(_ADMISSION_FACTS, (device_id, fw_product_id, device_id)).fetchone()
        return admission_facts_of(row, fw_product_id)

    def admission_facts_at(
        self, device_id: str, fw_product_id: int | None
    ) -> tuple[int | None, DeviceRecord | None, DeviceFacts, ProductFacts | None]:
        """As AdminQueries', in PostgreSQL's spelling."""
        if fw_product_id is not None and not 0 <= fw_product_id < 2**63:
            fw_product_id = None
        row = self._q.execute(_ADMISSION_FACTS_AT, (device_id, fw_product_id, device_id)).fetchone()
        return (epoch_of(row[0]), *admission_facts_of(row[1:], fw_product_id))

    def claim_live_session(self, device_id: str, node_id: str, counter: int, at: float) -> str | None:
        """As LiveSessionQueries', in one statement (it runs in every READY's write): the WITH reads
        the row as it was before the upsert (one snapshot for the whole statement)."""
        (previous,) = self._w.execute(
            "WITH previous AS (SELECT node_id FROM live_sessions WHERE device_id = ?)"
            " INSERT INTO live_sessions (device_id, node_id, counter, privileges, product_id, since)"
            " VALUES (?, ?, ?, 0, NULL, ?) ON CONFLICT (device_id) DO UPDATE SET node_id = excluded.node_id,"
            " counter = excluded.counter, privileges = 0, product_id = NULL, since = excluded.since"
            " RETURNING (SELECT node_id FROM previous)",
            (device_id, device_id, node_id, counter, at),
        ).fetchone()
        return None if previous is None or previous == node_id else str(previous)

    def firmware_target_facts(self, product_id: int, device_id: str) -> FirmwareTargetFacts:
        """As FirmwareQueries', in one statement instead of three (a device's firmware view; the
        connect path reads `offer_facts` instead)."""
        rows = self._q.execute(_TARGET_FACTS, (product_id, device_id, product_id, device_id, product_id)).fetchall()
        locked, groups = rows[0][0], tuple(rows[0][1])
        releases = [_release(row[2:]) for row in rows if row[2] is not None]
        default = next((r for r in releases if r.group is None), None)
        in_groups = tuple(r for r in releases if r.group is not None and r.group in groups)
        return FirmwareTargetFacts(None if locked is None else int(locked), default, in_groups, groups)

    def offer_facts(self, product_id: int, device_id: str) -> OfferFacts:
        """As FirmwareQueries', in PostgreSQL's spelling."""
        p, d = product_id, device_id
        return offer_facts_of(self._q.execute(_OFFER_FACTS, (p, d, d, p, p, p, d, p, d, d)).fetchone())

    def admission_facts_many(
        self, requests: Sequence[tuple[str, int | None]]
    ) -> list[tuple[int | None, DeviceRecord | None, DeviceFacts, ProductFacts | None]]:
        """As AdminQueries', in PostgreSQL's spelling (a product ID bigint cannot hold is no product)."""
        fitting = [(d, p if p is None or 0 <= p < 2**63 else None) for d, p in requests]
        return admission_rows_many(self._q, _ADMISSION_FACTS_MANY, fitting)

    def set_webhook_cursor(self, event_id: int) -> None:
        self._w.execute("UPDATE webhook_dispatch SET cursor = GREATEST(cursor, ?) WHERE id = 1", (event_id,))

    def rollout_devices(self, rollout_id: int, offset: int = 0, limit: int = -1) -> list[RolloutDevice]:
        """All of them where `limit` is negative (SQLite's LIMIT -1; PostgreSQL's LIMIT NULL)."""
        rows = self._q.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM rollout_devices WHERE rollout_id = ? ORDER BY position LIMIT ? OFFSET ?",
            (rollout_id, limit if limit >= 0 else None, offset),
        )
        return [_device(r) for r in rows]
