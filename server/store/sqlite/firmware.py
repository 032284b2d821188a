"""SQLite queries for product firmware, device groups, releases and firmware locks.

A mixin of SQLiteStore, like AdminQueries: reads go through `_q`, underscore methods write
and run inside `write_batch`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...rules.errors import Conflict, Invalid
from ...rules.firmware_target import ReleaseCandidate, TargetFacts
from ...rules.rollout_model import ACTIVE_STATES
from ..records import FirmwareRecord, FirmwareTargetFacts, GroupRecord, OfferFacts, ReleaseRecord
from .admin import AdminQueries

_FIRMWARE = (
    "product_id, version, title, description, name, size, sha256, signature, platform_id, uploaded_at,"
    " uploaded_by, released_at"
)
_RELEASE = (
    "SELECT r.product_id, r.version, g.name, r.intelligent, r.released_at, r.released_by"
    " FROM firmware_releases r LEFT JOIN device_groups g ON g.id = r.group_id"
)

# The OTA offer's facts on a connect (?1 the device, ?2 the product), one statement instead of six
# reads: what firmware_target_facts, get_device (development), rollout_assignment and ota_outcome
# read. Group releases are matched by the group's id within the product (names are unique in it).
_OFFER_FACTS = (
    "SELECT d.development,"
    " (SELECT version FROM firmware_locks WHERE product_id = ?2 AND device_id = ?1),"
    " (SELECT rd.assigned_version FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id"
    "  WHERE rd.device_id = ?1 AND r.product_id = ?2 AND rd.assigned_version IS NOT NULL"
    "  ORDER BY rd.rollout_id DESC LIMIT 1),"
    " (SELECT group_concat(fr.version) FROM firmware_releases fr JOIN device_groups g ON g.id = fr.group_id"
    "  JOIN device_group_members m ON m.group_id = g.id WHERE fr.product_id = ?2 AND g.product_id = ?2"
    "  AND m.device_id = ?1),"
    " (SELECT version FROM firmware_releases WHERE product_id = ?2 AND group_id IS NULL),"
    " o.version, o.reason"
    " FROM (SELECT 1) LEFT JOIN devices d ON d.device_id = ?1 LEFT JOIN device_ota o ON o.device_id = ?1"
)


def offer_facts_of(row: tuple[Any, ...]) -> OfferFacts:
    """The offer query's row (both engines' end in the same columns) as OfferFacts."""
    development, locked, rollout, groups, default, last_version, last_reason = row
    target = TargetFacts(
        development=bool(development),
        locked_version=None if locked is None else int(locked),
        rollout_version=None if rollout is None else int(rollout),
        group_versions=frozenset(int(v) for v in groups.split(",")) if groups else frozenset(),
        product_default=None if default is None else int(default),
    )
    return OfferFacts(target, None if last_version is None else int(last_version), last_reason or "")


def _firmware(row: tuple[Any, ...]) -> FirmwareRecord:
    (product, version, title, description, name, size, sha256, signature, platform, at, by, released) = row
    sig = None if signature is None else bytes(signature)
    return FirmwareRecord(product, version, title, description, name, size, sha256, sig, platform, at, by, released)


def _duplicate(exc: Exception) -> bool:
    """A key already taken, as opposed to a CHECK or foreign key failing (a bug, not a conflict).
    SQLite says "UNIQUE constraint failed", PostgreSQL "violates unique constraint"."""
    return "unique" in str(exc).lower()


def _release(row: tuple[Any, ...]) -> ReleaseRecord:
    return ReleaseRecord(row[0], row[1], row[2], bool(row[3]), row[4], row[5])


class FirmwareQueries(AdminQueries):
    # ------------------------------------------------------------------ firmware

    def _with_releases(self, records: list[FirmwareRecord]) -> list[FirmwareRecord]:
        if not records:
            return records
        by_version: dict[int, list[ReleaseRecord]] = defaultdict(list)
        for release in self.list_releases(records[0].product_id):
            by_version[release.version].append(release)
        out = []
        for record in records:
            releases = by_version.get(record.version, [])
            out.append(
                replace(
                    record,
                    product_default=any(r.group is None for r in releases),
                    groups=tuple(sorted(r.group for r in releases if r.group is not None)),
                    intelligent=any(r.intelligent for r in releases),
                )
            )
        return out

    def get_firmware(self, product_id: int, version: int) -> FirmwareRecord | None:
        row = self._q.execute(
            f"SELECT {_FIRMWARE} FROM firmware WHERE product_id = ? AND version = ?", (product_id, version)
        ).fetchone()
        return self._with_releases([_firmware(row)])[0] if row else None

    def list_firmware(self, product_id: int) -> list[FirmwareRecord]:
        rows = self._q.execute(f"SELECT {_FIRMWARE} FROM firmware WHERE product_id = ? ORDER BY version", (product_id,))
        return self._with_releases([_firmware(r) for r in rows])

    def insert_firmware(self, record: FirmwareRecord) -> None:
        r = record
        try:
            self._w.execute(
                f"INSERT INTO firmware ({_FIRMWARE}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (r.product_id, r.version, r.title, r.description, r.name, r.size, r.sha256, r.signature,
                 r.platform_id, r.uploaded_at, r.uploaded_by),
            )  # fmt: skip
        except self._integrity_error as exc:
            if not _duplicate(exc):
                raise
            raise Conflict(f"product {r.product_id} already has firmware version {r.version}", "version") from None

    def delete_firmware(self, product_id: int, version: int) -> bool:
        cur = self._w.execute("DELETE FROM firmware WHERE product_id = ? AND version = ?", (product_id, version))
        return cur.rowcount > 0

    def update_firmware_info(self, product_id: int, version: int, title: str, description: str) -> bool:
        cur = self._w.execute(
            "UPDATE firmware SET title = ?, description = ? WHERE product_id = ? AND version = ?",
            (title, description, product_id, version),
        )
        return cur.rowcount > 0

    # ------------------------------------------------------------------ releases

    def list_releases(self, product_id: int) -> list[ReleaseRecord]:
        rows = self._q.execute(_RELEASE + " WHERE r.product_id = ? ORDER BY r.version, g.name", (product_id,))
        return [_release(r) for r in rows]

    def release_firmware(
        self,
        product_id: int,
        version: int,
        *,
        product_default: bool,
        groups: Sequence[str],
        intelligent: bool,
        at: float,
        actor: str,
    ) -> None:
        w = self._w
        w.execute("DELETE FROM firmware_releases WHERE product_id = ? AND version = ?", (product_id, version))
        insert = (
            "INSERT INTO firmware_releases (product_id, version, group_id, intelligent, released_at, released_by)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
        if product_default:
            w.execute("DELETE FROM firmware_releases WHERE product_id = ? AND group_id IS NULL", (product_id,))
            w.execute(insert, (product_id, version, None, int(intelligent), at, actor))
        for name in sorted(set(groups)):
            group = self.get_group(product_id, name)
            if group is None:
                raise Invalid(f"group {name!r} not found in product {product_id}", "groups")
            w.execute("DELETE FROM firmware_releases WHERE group_id = ?", (group.id,))
            w.execute(insert, (product_id, version, group.id, int(intelligent), at, actor))
        # released_at follows the releases: set for this version if it has a target, cleared for
        # every version (this one or another) that has none left.
        w.execute(
            "UPDATE firmware SET released_at = ? WHERE product_id = ? AND version = ?"
            " AND EXISTS (SELECT 1 FROM firmware_releases r WHERE r.product_id = ? AND r.version = ?)",
            (at, product_id, version, product_id, version),
        )
        w.execute(
            "UPDATE firmware SET released_at = NULL WHERE product_id = ? AND released_at IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM firmware_releases r WHERE r.product_id = firmware.product_id"
            " AND r.version = firmware.version)",
            (product_id,),
        )

    # ------------------------------------------------------------------ groups

    def _groups(self, product_id: int, name: str | None) -> list[GroupRecord]:
        sql = (
            "SELECT g.id, g.product_id, g.name, g.description, g.created_at,"
            " (SELECT COUNT(*) FROM device_group_members m WHERE m.group_id = g.id),"
            " r.version, r.intelligent"
            " FROM device_groups g LEFT JOIN firmware_releases r ON r.group_id = g.id WHERE g.product_id = ?"
        )
        args: list[object] = [product_id]
        if name is not None:
            sql += " AND g.name = ?"
            args.append(name)
        rows = self._q.execute(sql + " ORDER BY g.name", args)
        return [GroupRecord(i, p, n, d, at, count, v, bool(intel)) for (i, p, n, d, at, count, v, intel) in rows]

    def get_group(self, product_id: int, name: str) -> GroupRecord | None:
        found = self._groups(product_id, name)
        return found[0] if found else None

    def list_groups(self, product_id: int) -> list[GroupRecord]:
        return self._groups(product_id, None)

    def insert_group(self, product_id: int, name: str, description: str, at: float) -> GroupRecord:
        try:
            new_id = self._insert_id(
                "INSERT INTO device_groups (product_id, name, description, created_at) VALUES (?, ?, ?, ?)",
                (product_id, name, description, at),
            )
        except self._integrity_error as exc:
            if not _duplicate(exc):
                raise
            raise Conflict(f"product {product_id} already has a group named {name!r}", "name") from None
        return GroupRecord(new_id, product_id, name, description, at)

    def delete_group(self, product_id: int, name: str) -> bool:
        cur = self._w.execute("DELETE FROM device_groups WHERE product_id = ? AND name = ?", (product_id, name))
        if cur.rowcount == 0:
            return False
        # Its release went with it (ON DELETE CASCADE): a version may now have no target left.
        self._w.execute(
            "UPDATE firmware SET released_at = NULL WHERE product_id = ? AND released_at IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM firmware_releases r WHERE r.product_id = firmware.product_id"
            " AND r.version = firmware.version)",
            (product_id,),
        )
        return True

    def device_groups(self, product_id: int, device_id: str) -> list[str]:
        rows = self._q.execute(
            "SELECT g.name FROM device_group_members m JOIN device_groups g ON g.id = m.group_id"
            " WHERE g.product_id = ? AND m.device_id = ? ORDER BY g.name",
            (product_id, device_id),
        )
        return [name for (name,) in rows]

    def set_device_groups(self, product_id: int, device_id: str, names: Sequence[str]) -> None:
        w = self._w
        w.execute(
            "DELETE FROM device_group_members WHERE device_id = ?"
            " AND group_id IN (SELECT id FROM device_groups WHERE product_id = ?)",
            (device_id, product_id),
        )
        for name in sorted(set(names)):
            cur = w.execute(
                "INSERT INTO device_group_members (group_id, device_id)"
                " SELECT id, ? FROM device_groups WHERE product_id = ? AND name = ?",
                (device_id, product_id, name),
            )
            if cur.rowcount == 0:
                raise Invalid(f"group {name!r} not found in product {product_id}", "groups")

    # ------------------------------------------------------------------ locks

    def firmware_lock(self, product_id: int, device_id: str) -> int | None:
        row = self._q.execute(
            "SELECT version FROM firmware_locks WHERE product_id = ? AND device_id = ?", (product_id, device_id)
        ).fetchone()
        return int(row[0]) if row else None

    def firmware_locks_on(self, product_id: int, version: int) -> list[str]:
        rows = self._q.execute(
            "SELECT device_id FROM firmware_locks WHERE product_id = ? AND version = ? ORDER BY device_id",
            (product_id, version),
        )
        return [d for (d,) in rows]

    def set_firmware_lock(self, product_id: int, device_id: str, version: int | None, at: float, actor: str) -> None:
        self._w.execute("DELETE FROM firmware_locks WHERE device_id = ?", (device_id,))
        if version is not None:
            self._w.execute(
                "INSERT INTO firmware_locks (device_id, product_id, version, locked_at, locked_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (device_id, product_id, version, at, actor),
            )

    # ------------------------------------------------------------------ the target rule's inputs

    def firmware_target_facts(self, product_id: int, device_id: str) -> FirmwareTargetFacts:
        groups = self.device_groups(product_id, device_id)
        releases = self.list_releases(product_id)
        default = next((r for r in releases if r.group is None), None)
        in_groups = tuple(r for r in releases if r.group is not None and r.group in groups)
        return FirmwareTargetFacts(self.firmware_lock(product_id, device_id), default, in_groups, tuple(groups))

    def offer_facts(self, product_id: int, device_id: str) -> OfferFacts:
        return offer_facts_of(self._q.execute(_OFFER_FACTS, (device_id, product_id)).fetchone())

    def release_candidates(self, product_id: int) -> list[ReleaseCandidate]:
        """Every member with what picks its firmware target, in a few reads (a release preview)."""
        q = self._q
        groups: dict[str, set[str]] = defaultdict(set)
        for device_id, name in q.execute(
            "SELECT m.device_id, g.name FROM device_group_members m JOIN device_groups g ON g.id = m.group_id"
            " WHERE g.product_id = ?",
            (product_id,),
        ):
            groups[device_id].add(name)
        active = ", ".join(f"'{s.value}'" for s in ACTIVE_STATES)
        assigned: dict[str, tuple[int, bool]] = {}  # the newest rollout's assignment, and whether it is unfinished
        newest_active: dict[str, int] = {}
        for device_id, version, is_active in q.execute(
            f"SELECT d.device_id, d.assigned_version, CASE WHEN r.state IN ({active}) THEN 1 ELSE 0 END"
            " FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id"
            " WHERE r.product_id = ? AND d.assigned_version IS NOT NULL ORDER BY d.rollout_id",
            (product_id,),
        ):
            assigned[device_id] = (int(version), bool(is_active))
            if is_active:
                newest_active[device_id] = int(version)
        rows = q.execute(
            "SELECT d.device_id, d.firmware_version, d.development, l.version FROM devices d"
            " LEFT JOIN firmware_locks l ON l.device_id = d.device_id AND l.product_id = d.product_id"
            " WHERE d.product_id = ? ORDER BY d.device_id",
            (product_id,),
        )
        return [
            ReleaseCandidate(
                device_id=i,
                running=fw,
                development=bool(dev),
                locked_version=lock,
                rollout_version=assigned[i][0] if i in assigned else None,
                active_rollout_version=newest_active.get(i),
                groups=frozenset(groups.get(i, ())),
            )
            for (i, fw, dev, lock) in rows
        ]
