"""SQLite queries for rollouts and their per-device rows (a mixin of SQLiteStore; see admin.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ...rules.rollout_model import (
    ACTIVE_STATES,
    DeviceState,
    ErrorAction,
    Phase,
    Rollout,
    RolloutCandidate,
    RolloutDevice,
    RolloutDeviceFacts,
    RolloutSettings,
    RolloutState,
    RolloutTarget,
    Strategy,
)
from ..records import CAME_BACK_ON_OLD
from ..sql import SqlConnection

_ROLLOUT_COLUMNS = (
    "id, product_id, version, target, settings, state, state_reason, current_stage, rate_budget,"
    " error_action_fired, failures_forgiven, created_at, created_by, updated_at, finished_at,"
    " (SELECT COUNT(*) FROM rollout_devices d WHERE d.rollout_id = rollouts.id)"
)
_DEVICE_COLUMNS = (
    "rollout_id, device_id, position, stage, state, phase, attempts, from_version, assigned_version, reason,"
    " offered_at, next_try_at, updated_at"
)
_ACTIVE = ", ".join(f"'{s.value}'" for s in ACTIVE_STATES)


def settings_json(s: RolloutSettings) -> str:
    return json.dumps(
        {
            "strategy": s.strategy.value, "stages": list(s.stages), "rate_start": s.rate_start,
            "rate_factor": s.rate_factor, "rate_increase_every": s.rate_increase_every,
            "max_concurrent": s.max_concurrent, "retries": s.retries, "device_timeout": s.device_timeout,
            "retry_delay": s.retry_delay, "success_threshold": s.success_threshold,
            "error_threshold": s.error_threshold, "error_action": s.error_action.value,
        }
    )  # fmt: skip


def settings_from_json(text: str) -> RolloutSettings:
    d: dict[str, Any] = json.loads(text)
    return RolloutSettings(
        strategy=Strategy(d["strategy"]), stages=tuple(d["stages"]), rate_start=d["rate_start"],
        rate_factor=d["rate_factor"], rate_increase_every=d["rate_increase_every"],
        max_concurrent=d["max_concurrent"], retries=d["retries"], device_timeout=d["device_timeout"],
        retry_delay=d["retry_delay"], success_threshold=d["success_threshold"],
        error_threshold=d["error_threshold"], error_action=ErrorAction(d["error_action"]),
    )  # fmt: skip


def _target_json(t: RolloutTarget) -> str:
    return json.dumps({"product_default": t.product_default, "groups": list(t.groups), "devices": list(t.devices)})


def _target_from_json(text: str) -> RolloutTarget:
    d: dict[str, Any] = json.loads(text)
    return RolloutTarget(bool(d["product_default"]), tuple(d["groups"]), tuple(d["devices"]))


def _rollout(row: Sequence[Any]) -> Rollout:
    (i, product, version, target, settings, state, reason, stage, budget, fired, forgiven,
     created, by, updated, finished, count) = row  # fmt: skip
    return Rollout(
        id=i, product_id=product, version=version, target=_target_from_json(target),
        settings=settings_from_json(settings), state=RolloutState(state), state_reason=reason,
        current_stage=stage, rate_budget=budget, error_action_fired=bool(fired), created_at=created,
        created_by=by, updated_at=updated, finished_at=finished, failures_forgiven=forgiven, device_count=count,
    )  # fmt: skip


def _device(row: Sequence[Any]) -> RolloutDevice:
    (rid, device, position, stage, state, phase, attempts, from_v, assigned, reason, offered, next_try,
     updated) = row  # fmt: skip
    return RolloutDevice(
        rollout_id=rid, device_id=device, position=position, stage=stage, state=DeviceState(state),
        phase=Phase(phase), attempts=attempts, from_version=from_v, assigned_version=assigned, reason=reason,
        offered_at=offered, next_try_at=next_try, updated_at=updated,
    )  # fmt: skip


def _device_values(d: RolloutDevice) -> tuple[Any, ...]:
    return (
        d.rollout_id, d.device_id, d.position, d.stage, d.state.value, d.phase.value, d.attempts, d.from_version,
        d.assigned_version, d.reason, d.offered_at, d.next_try_at, d.updated_at,
    )  # fmt: skip


class RolloutQueries:
    _w: SqlConnection
    _q: SqlConnection  # AdminQueries' property: the writer's connection inside a batch
    _insert_id: Callable[[str, Sequence[object]], int]  # AdminQueries'

    def get_rollout(self, product_id: int, rollout_id: int) -> Rollout | None:
        row = self._q.execute(
            f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE product_id = ? AND id = ?", (product_id, rollout_id)
        ).fetchone()
        return _rollout(row) if row else None

    def list_rollouts(self, product_id: int) -> list[Rollout]:
        rows = self._q.execute(
            f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE product_id = ? ORDER BY id DESC", (product_id,)
        )
        return [_rollout(r) for r in rows]

    def active_rollouts(self) -> list[Rollout]:
        rows = self._q.execute(f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE state IN ({_ACTIVE}) ORDER BY id")
        return [_rollout(r) for r in rows]

    def rollout_devices(self, rollout_id: int, offset: int = 0, limit: int = -1) -> list[RolloutDevice]:
        rows = self._q.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM rollout_devices WHERE rollout_id = ? ORDER BY position LIMIT ? OFFSET ?",
            (rollout_id, limit, offset),
        )
        return [_device(r) for r in rows]

    def rollout_devices_in_state(
        self, rollout_id: int, state: str, offset: int, limit: int
    ) -> tuple[int, list[RolloutDevice]]:
        """How many of a rollout's devices are in `state`, and a page of them in offer order."""
        (total,) = self._q.execute(
            "SELECT COUNT(*) FROM rollout_devices WHERE rollout_id = ? AND state = ?", (rollout_id, state)
        ).fetchone()
        rows = self._q.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM rollout_devices WHERE rollout_id = ? AND state = ?"
            " ORDER BY position LIMIT ? OFFSET ?",
            (rollout_id, state, max(0, limit), offset),
        )
        return int(total), [_device(r) for r in rows]

    def rollout_rows(self, rollout_id: int, device_ids: Sequence[str]) -> dict[str, RolloutDevice]:
        """These devices' rows of one rollout (the scheduler's check before it writes)."""
        out: dict[str, RolloutDevice] = {}
        for start in range(0, len(device_ids), 500):  # SQLite's bound-parameter limit
            part = device_ids[start : start + 500]
            marks = ", ".join("?" for _ in part)
            rows = self._q.execute(
                f"SELECT {_DEVICE_COLUMNS} FROM rollout_devices WHERE rollout_id = ? AND device_id IN ({marks})",
                [rollout_id, *part],
            )
            out.update((r.device_id, r) for r in map(_device, rows))
        return out

    def active_rollout_row(self, device_id: str) -> tuple[Rollout, RolloutDevice] | None:
        """The device's row in an unfinished rollout (at most one per product), newest first; else
        its row in the newest rollout at all (an aborted one still hears how an install ended)."""
        row = self._q.execute(
            "SELECT rollout_id FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id"
            f" WHERE d.device_id = ? ORDER BY r.state IN ({_ACTIVE}) DESC, rollout_id DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        if row is None:
            return None
        rollout = self._q.execute(f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?", row).fetchone()
        device = self._q.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM rollout_devices WHERE rollout_id = ? AND device_id = ?",
            (row[0], device_id),
        ).fetchone()
        return _rollout(rollout), _device(device)

    def rollout_assignment(self, product_id: int, device_id: str) -> int | None:
        """The version the newest rollout that holds a target for this device gives it, if any."""
        row = self._q.execute(
            "SELECT d.assigned_version FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id"
            " WHERE d.device_id = ? AND r.product_id = ? AND d.assigned_version IS NOT NULL"
            " ORDER BY d.rollout_id DESC LIMIT 1",
            (device_id, product_id),
        ).fetchone()
        return None if row is None else int(row[0])

    def rollouts_needing_version(self, product_id: int, version: int) -> list[tuple[int, str]]:
        rows = self._q.execute(
            "SELECT r.id, r.state FROM rollouts r WHERE r.product_id = ? AND ("
            f" (r.state IN ({_ACTIVE}) AND (r.version = ? OR EXISTS (SELECT 1 FROM rollout_devices d"
            "   WHERE d.rollout_id = r.id AND d.from_version = ?)))"
            " OR EXISTS (SELECT 1 FROM rollout_devices d WHERE d.rollout_id = r.id AND d.assigned_version = ?)"
            ") ORDER BY r.id",
            (product_id, version, version, version),
        )
        return [(int(rollout_id), str(state)) for rollout_id, state in rows]

    def insert_rollout(self, rollout: Rollout, devices: Iterable[tuple[str, int]]) -> int:
        """Insert a rollout (its id is assigned) with its devices as (device_id, stage), in offer order."""
        rid = self._insert_id(
            "INSERT INTO rollouts (product_id, version, target, settings, state, state_reason, current_stage,"
            " rate_budget, error_action_fired, failures_forgiven, created_at, created_by, updated_at, finished_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rollout.product_id, rollout.version, _target_json(rollout.target), settings_json(rollout.settings),
                rollout.state.value, rollout.state_reason, rollout.current_stage, rollout.rate_budget,
                int(rollout.error_action_fired), rollout.failures_forgiven, rollout.created_at, rollout.created_by,
                rollout.updated_at, rollout.finished_at,
            ),
        )  # fmt: skip
        self._w.executemany(
            f"INSERT INTO rollout_devices ({_DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _device_values(RolloutDevice(rid, device_id, position, stage, updated_at=rollout.created_at))
                for position, (device_id, stage) in enumerate(devices)
            ),
        )
        return rid

    def update_rollout(self, rollout: Rollout) -> None:
        self._w.execute(
            "UPDATE rollouts SET state = ?, state_reason = ?, current_stage = ?, rate_budget = ?,"
            " error_action_fired = ?, failures_forgiven = ?, updated_at = ?, finished_at = ? WHERE id = ?",
            (
                rollout.state.value, rollout.state_reason, rollout.current_stage, rollout.rate_budget,
                int(rollout.error_action_fired), rollout.failures_forgiven, rollout.updated_at, rollout.finished_at,
                rollout.id,
            ),
        )  # fmt: skip

    def update_rollout_devices(self, rows: Iterable[RolloutDevice]) -> None:
        self._w.executemany(
            "UPDATE rollout_devices SET state = ?, phase = ?, attempts = ?, from_version = ?, assigned_version = ?,"
            " reason = ?, offered_at = ?, next_try_at = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ?",
            (
                (
                    d.state.value, d.phase.value, d.attempts, d.from_version, d.assigned_version, d.reason,
                    d.offered_at, d.next_try_at, d.updated_at, d.rollout_id, d.device_id,
                )
                for d in rows
            ),
        )  # fmt: skip

    def clear_rollout_assignments(self, product_id: int, keep: int | None = None) -> int:
        """Drop the targets that finished rollouts of the product hold (but `keep`'s): the release
        rules, or the newer rollout, take over."""
        cur = self._w.execute(
            "UPDATE rollout_devices SET assigned_version = NULL WHERE assigned_version IS NOT NULL"
            f" AND rollout_id IN (SELECT id FROM rollouts WHERE product_id = ? AND state NOT IN ({_ACTIVE}))"
            " AND rollout_id IS NOT ?",
            (product_id, keep),
        )
        return cur.rowcount

    def restart_rollout_clocks(self, at: float) -> int:
        """At startup: transfers in flight of unfinished rollouts get their whole timeout again."""
        cur = self._w.execute(
            "UPDATE rollout_devices SET offered_at = ? WHERE offered_at IS NOT NULL"
            f" AND rollout_id IN (SELECT id FROM rollouts WHERE state IN ({_ACTIVE}))",
            (at,),
        )
        return cur.rowcount

    def rollout_candidates(self, product_id: int, groups: Sequence[str] | None = None) -> list[RolloutCandidate]:
        """The product's members (in any of `groups`, when given), with what decides whether a rollout
        can move them: development devices never update; a lock wins over a rollout."""
        sql = (
            "SELECT d.device_id, d.development, l.version FROM devices d"
            " LEFT JOIN firmware_locks l ON l.device_id = d.device_id AND l.product_id = d.product_id"
            " WHERE d.product_id = ?"
        )
        args: list[object] = [product_id]
        if groups is not None:
            marks = ", ".join("?" for _ in groups)
            sql += (
                " AND d.device_id IN (SELECT m.device_id FROM device_group_members m JOIN device_groups g"
                f" ON g.id = m.group_id WHERE g.product_id = ? AND g.name IN ({marks}))"
            )
            args += [product_id, *groups]
        rows = self._q.execute(sql + " ORDER BY d.device_id", args)
        return [RolloutCandidate(i, bool(dev), lock) for (i, dev, lock) in rows]

    def rollout_device_facts(self, product_id: int, device_ids: Sequence[str]) -> dict[str, RolloutDeviceFacts]:
        """What decides, at each tick, whether a rollout can still move each device."""
        out: dict[str, RolloutDeviceFacts] = {}
        for start in range(0, len(device_ids), 500):  # SQLite's bound-parameter limit
            part = device_ids[start : start + 500]
            marks = ", ".join("?" for _ in part)
            rows = self._q.execute(
                "SELECT d.device_id, d.product_id, d.firmware_version, d.development, l.version, o.version,"
                " d.platform_id"
                " FROM devices d LEFT JOIN firmware_locks l ON l.device_id = d.device_id"
                " LEFT JOIN device_ota o ON o.device_id = d.device_id AND o.state = 'failed'"
                f" AND substr(o.reason, 1, ?) = ? WHERE d.device_id IN ({marks})",
                [len(CAME_BACK_ON_OLD), CAME_BACK_ON_OLD, *part],
            )
            for i, p, fw, dev, lock, old, platform in rows:
                out[i] = RolloutDeviceFacts(p == product_id, fw, bool(dev), lock, old, platform)
        return out
