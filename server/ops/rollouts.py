"""Operator actions on rollouts: create, pause, resume, abort. Reached as `Operations.rollouts`.

Each is one transaction with an audit entry; the scheduler is rung afterwards so the change is
acted on at once (offers for a new or resumed rollout, aborts for a stopped one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..cluster import WakeRollouts
from ..logs import now
from ..rollouts.planner import abort, pause, resume
from ..rollouts.service import Applied, announce
from ..rules.errors import Conflict, Invalid, NotFound
from ..rules.rollout_model import (
    DeviceState,
    Rollout,
    RolloutCandidate,
    RolloutDevice,
    RolloutSettings,
    RolloutState,
    RolloutTarget,
    Strategy,
)
from ..store.reads import StoreReads
from ..store.tx import StoreTx
from .base import OpsBase
from .firmware import check_group_names, check_version

MAX_STAGES = 32
MAX_EXPLICIT_DEVICES = 100_000


@dataclass(frozen=True, slots=True)
class RolloutPreview:
    devices: int  # how many devices the rollout would hold
    stages: tuple[int, ...]  # cumulative device counts per stage
    sample: tuple[str, ...]  # the first of them, in offer order


@dataclass(frozen=True, slots=True)
class RolloutRequest:
    version: int
    target: RolloutTarget
    settings: RolloutSettings
    stages: Sequence[str | int] = ()  # as given: counts or "N%" (cumulative)


def parse_stages(stages: Sequence[str | int], total: int, *, strict: bool = False) -> tuple[int, ...]:
    """Cumulative counts from counts or percentages; a last stage for every device is implied.
    Stages must grow as given (`strict`: checked on a huge fleet, where percentages cannot tie);
    on the real fleet, stages that collapse to the same count merge."""
    if len(stages) > MAX_STAGES:
        raise Invalid(f"at most {MAX_STAGES} stages", "stages")
    out: list[int] = []
    raw: list[int] = []  # as given, before the fleet's size caps them
    for item in stages:
        text = str(item).strip()
        try:
            if text.endswith("%"):
                percent = float(text[:-1])
                if not 0 < percent <= 100:
                    raise ValueError
                count = math.ceil(total * percent / 100 - 1e-9)
            else:
                count = int(text)
                if count < 1:
                    raise ValueError
        except ValueError:
            raise Invalid(
                f"a stage is a device count (1 or more) or a percentage (0-100%]: {text[:40]!r}", "stages"
            ) from None
        if raw and (count <= raw[-1] if strict else count < raw[-1]):
            raise Invalid("stages are cumulative and must grow: each stage covers more devices than the last", "stages")
        raw.append(count)
        count = max(1, min(total, count))
        if not out or count > out[-1]:  # stages that collapse on a small fleet merge
            out.append(count)
    if not out or out[-1] < total:
        out.append(total)
    return tuple(out)


def check_settings(s: RolloutSettings) -> None:
    def within(value: float, low: float, high: float, name: str) -> None:
        if not (low <= value <= high) or math.isnan(value):
            raise Invalid(f"{name} must be within {low:g}..{high:g}", name)

    within(s.max_concurrent, 1, 100_000, "max_concurrent")
    within(s.retries, 0, 100, "retries")
    within(s.device_timeout, 1, 7 * 86400, "device_timeout")
    within(s.retry_delay, 0, 86400, "retry_delay")
    within(s.success_threshold, 0, 1, "success_threshold")
    within(s.error_threshold, 0, 1, "error_threshold")
    if s.error_threshold == 0:
        raise Invalid(
            "error_threshold must be above 0 (use a small fraction to stop at the first failures)", "error_threshold"
        )
    if s.strategy is Strategy.EXPONENTIAL:
        within(s.rate_start, 0.1, 1_000_000, "rate_start")
        within(s.rate_factor, 1, 100, "rate_factor")
        within(s.rate_increase_every, 1, 1_000_000, "rate_increase_every")


def _targets(store: StoreReads, product_id: int, version: int, target: RolloutTarget) -> list[RolloutCandidate]:
    kinds = sum((target.product_default, bool(target.groups), bool(target.devices)))
    if kinds != 1:
        raise Invalid("name exactly one target: product_default, groups or devices", "target")
    if target.groups:
        known = {g.name for g in store.list_groups(product_id)}
        unknown = [g for g in target.groups if g not in known]
        if unknown:
            raise Invalid(f"product {product_id} has no group named {unknown[0]!r}", "groups")
        members = store.rollout_candidates(product_id, target.groups)
    else:
        members = store.rollout_candidates(product_id)
    if target.devices:
        by_id = {m.device_id: m for m in members}
        missing = [d for d in target.devices if d not in by_id]
        if missing:
            raise Invalid(f"device {missing[0]} is not a member of product {product_id}", "devices")
        members = [by_id[d] for d in dict.fromkeys(target.devices)]
    # Development devices never update automatically, and a lock wins over any rollout.
    movable = [m for m in members if not m.development and m.locked_version in (None, version)]
    if not movable:
        raise Invalid(
            "the target has no device this rollout could update (members, not development, not locked)", "target"
        )
    return movable


class RolloutOperations:
    def __init__(self, ops: OpsBase) -> None:
        self.ops = ops

    async def get(self, key: int | str, rollout_id: int) -> Rollout:
        product = await self.ops.product(key)
        rollout = await self.ops.read(self.ops.sync.get_rollout, product.id, rollout_id)
        if rollout is None:
            raise NotFound(f"product {product.id} has no rollout {rollout_id}", "rollout")
        return rollout

    async def all(self, key: int | str) -> list[Rollout]:
        product = await self.ops.product(key)
        return await self.ops.read(self.ops.sync.list_rollouts, product.id)

    async def devices(self, key: int | str, rollout_id: int, offset: int = 0, limit: int = -1) -> list[RolloutDevice]:
        rollout = await self.get(key, rollout_id)
        return await self.ops.read(self.ops.sync.rollout_devices, rollout.id, offset, limit)

    async def devices_in_state(
        self, key: int | str, rollout_id: int, state: DeviceState, offset: int, limit: int
    ) -> tuple[int, list[RolloutDevice]]:
        rollout = await self.get(key, rollout_id)
        return await self.ops.read(self.ops.sync.rollout_devices_in_state, rollout.id, state.value, offset, limit)

    def _checked(self, request: RolloutRequest) -> tuple[int, RolloutTarget]:
        """The request's own form, before anything about the product's state."""
        version = check_version(request.version, "version")
        target = RolloutTarget(
            request.target.product_default,
            tuple(check_group_names(request.target.groups)),
            tuple(request.target.devices),
        )
        if len(target.devices) > MAX_EXPLICIT_DEVICES:
            raise Invalid(f"at most {MAX_EXPLICIT_DEVICES} devices", "devices")
        check_settings(request.settings)
        if request.settings.strategy is not Strategy.STAGED and request.stages:
            raise Invalid("stages go with strategy 'staged'", "stages")
        parse_stages(request.stages, 10**9, strict=True)
        return version, target

    @staticmethod
    def _plan(
        s: StoreReads, product_id: int, version: int, target: RolloutTarget, request: RolloutRequest
    ) -> tuple[list[RolloutCandidate], RolloutSettings, tuple[int, ...]]:
        """Which devices a rollout made now would hold, in offer order, and its stages: what
        `create` writes and `preview` shows, from the same checks."""
        if s.get_firmware(product_id, version) is None:
            raise NotFound(f"product {product_id} has no firmware version {version}", "version")
        active = [r for r in s.list_rollouts(product_id) if not r.state.finished]
        if active:
            raise Conflict(
                f"rollout {active[0].id} of product {product_id} is {active[0].state.value}:"
                " abort it (or let it finish) first",
                "rollout",
            )
        devices = _targets(s, product_id, version, target)
        settings = request.settings
        if settings.strategy is Strategy.STAGED:
            stages = parse_stages(request.stages or ["100%"], len(devices))
            settings = replace(settings, stages=stages)
        else:
            stages = (len(devices),)
        return devices, settings, stages

    async def preview(self, key: int | str, request: RolloutRequest, sample: int = 20) -> RolloutPreview:
        """What `create` would do now, without doing it: its devices (the first `sample` of them) and stages."""
        product = await self.ops.product(key)
        version, target = self._checked(request)

        def read(s: StoreReads) -> RolloutPreview:
            devices, _, stages = self._plan(s, product.id, version, target, request)
            return RolloutPreview(len(devices), stages, tuple(d.device_id for d in devices[:sample]))

        return await self.ops.read(read, self.ops.sync)

    async def create(self, actor: str, key: int | str, request: RolloutRequest) -> Rollout:
        product = await self.ops.product(key)
        version, target = self._checked(request)

        def tx(s: StoreTx) -> int:
            devices, settings, stages = self._plan(s, product.id, version, target, request)
            at = now()
            rollout = Rollout(
                id=0, product_id=product.id, version=version, target=target, settings=settings,
                state=RolloutState.RUNNING, state_reason="started", current_stage=0, rate_budget=0.0,
                error_action_fired=False, created_at=at, created_by=actor, updated_at=at,
            )  # fmt: skip
            staged = [
                (d.device_id, next(i for i, end in enumerate(stages) if pos < end)) for pos, d in enumerate(devices)
            ]
            rid = s.insert_rollout(rollout, staged)
            s.append_audit(
                at, actor, "rollout_created", product_id=product.id,
                detail={"rollout": rid, "version": version, "devices": len(devices),
                        "strategy": settings.strategy.value, "stages": list(stages),
                        "error_action": settings.error_action.value},
            )  # fmt: skip
            self.ops.notify(s, WakeRollouts())
            return rid

        rid = await self.ops.tx("create_rollout", tx)
        return await self.get(product.id, rid)

    async def _act(self, actor: str, key: int | str, rollout_id: int, action: str) -> Rollout:
        product = await self.ops.product(key)

        def tx(s: StoreTx) -> Applied:
            rollout = s.get_rollout(product.id, rollout_id)
            if rollout is None:
                raise NotFound(f"product {product.id} has no rollout {rollout_id}", "rollout")
            if rollout.state.finished:
                raise Conflict(f"rollout {rollout_id} has already {rollout.state.value.replace('_', ' ')}", "rollout")
            at = now()
            reason = f"{action} by {actor}"
            applied = Applied()
            if action == "pause":
                if rollout.state is not RolloutState.RUNNING:
                    raise Conflict(
                        f"only a running rollout can be paused; this one is {rollout.state.value}", "rollout"
                    )
                s.update_rollout(pause(rollout, reason, at))
            elif action == "resume":
                if rollout.state is not RolloutState.PAUSED:
                    raise Conflict(
                        f"only a paused rollout can be resumed; this one is {rollout.state.value}", "rollout"
                    )
                s.update_rollout(resume(rollout, s.rollout_devices(rollout.id), reason, at))
            else:
                step = abort(rollout, s.rollout_devices(rollout.id), reason, at)
                s.update_rollout(step.rollout)
                s.update_rollout_devices(step.changed.values())
                applied.abort = step.abort
            s.append_audit(at, actor, f"rollout_{action}", product_id=product.id, reason=reason,
                            detail={"rollout": rollout_id})  # fmt: skip
            announce(self.ops.ctx.bus, s, applied)
            self.ops.notify(s, WakeRollouts())
            return applied

        await self.ops.tx(f"{action}_rollout", tx)
        return await self.get(product.id, rollout_id)

    async def pause(self, actor: str, key: int | str, rollout_id: int) -> Rollout:
        return await self._act(actor, key, rollout_id, "pause")

    async def resume(self, actor: str, key: int | str, rollout_id: int) -> Rollout:
        return await self._act(actor, key, rollout_id, "resume")

    async def abort(self, actor: str, key: int | str, rollout_id: int) -> Rollout:
        return await self._act(actor, key, rollout_id, "abort")
