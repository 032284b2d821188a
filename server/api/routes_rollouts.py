"""Staged rollouts: create, list, show (with per-stage counts), per-device states, pause, resume, abort."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from ..ops.base import device_id_or_invalid
from ..ops.rollouts import RolloutRequest
from ..rollouts.planner import stage_sizes
from ..rules.errors import Invalid
from ..rules.rollout_model import (
    DeviceState,
    ErrorAction,
    Rollout,
    RolloutDevice,
    RolloutSettings,
    RolloutTarget,
    Strategy,
    count_states,
)
from .deps import ProductAccess, State, product_access
from .models_rollouts import (
    RolloutDeviceOut,
    RolloutDevicesMeta,
    RolloutDevicesOut,
    RolloutEnvelope,
    RolloutIn,
    RolloutOut,
    RolloutPreviewOut,
    RolloutsOut,
    RolloutTargetOut,
    StageCountsOut,
)
from .permissions import Perm
from .views import iso, iso_or_none

router = APIRouter(tags=["rollouts"])

Reader = Annotated[ProductAccess, Depends(product_access(Perm.FIRMWARE_READ))]
Releaser = Annotated[ProductAccess, Depends(product_access(Perm.FIRMWARE_RELEASE))]
RolloutPath = Annotated[int, Path(ge=1, le=2**62, description="rollout ID")]
DeviceStateName = Literal[
    "pending", "offered", "downloading", "installed", "confirmed", "failed", "skipped", "rolled_back"
]


def rollout_out(r: Rollout, rows: list[RolloutDevice]) -> RolloutOut:
    s = r.settings
    sizes = stage_sizes(r, len(rows))
    stage_counts = [
        StageCountsOut(
            stage=i,
            size=end - (sizes[i - 1] if i else 0),
            counts=count_states(row for row in rows if row.stage == i),
        )
        for i, end in enumerate(sizes)
    ]
    return RolloutOut(
        id=r.id, product_id=r.product_id, version=r.version, state=r.state.value, state_reason=r.state_reason,
        target=RolloutTargetOut(product_default=r.target.product_default, groups=list(r.target.groups),
                                devices=len(rows)),
        strategy=s.strategy.value, stages=list(sizes), current_stage=r.current_stage,
        max_concurrent=s.max_concurrent, retries=s.retries, device_timeout=s.device_timeout,
        retry_delay=s.retry_delay, success_threshold=s.success_threshold, error_threshold=s.error_threshold,
        error_action=s.error_action.value, error_action_fired=r.error_action_fired, rate_start=s.rate_start,
        rate_factor=s.rate_factor, rate_increase_every=s.rate_increase_every, counts=count_states(rows),
        stage_counts=stage_counts, created_at=iso(r.created_at), created_by=r.created_by,
        updated_at=iso(r.updated_at), finished_at=iso_or_none(r.finished_at),
    )  # fmt: skip


async def _out(state: State, rollout: Rollout) -> RolloutOut:
    rows = await state.ctx.store.read(state.store.rollout_devices, rollout.id)
    return rollout_out(rollout, rows)


def rollout_request(body: RolloutIn) -> RolloutRequest:
    settings = RolloutSettings(
        strategy=Strategy(body.strategy), rate_start=float(body.rate_start), rate_factor=float(body.rate_factor),
        rate_increase_every=body.rate_increase_every, max_concurrent=body.max_concurrent, retries=body.retries,
        device_timeout=float(body.device_timeout), retry_delay=float(body.retry_delay),
        success_threshold=float(body.success_threshold), error_threshold=float(body.error_threshold),
        error_action=ErrorAction(body.error_action),
    )  # fmt: skip
    try:
        devices = tuple(device_id_or_invalid(d) for d in body.devices)
    except Invalid as exc:
        raise Invalid(exc.message, "devices") from None
    target = RolloutTarget(body.product_default, tuple(body.groups), devices)
    return RolloutRequest(body.version, target, settings, tuple(body.stages))


@router.post("/v1/products/{product}/rollouts", response_model=RolloutEnvelope, status_code=201,
             summary="Start a rollout")  # fmt: skip
async def create_rollout(body: RolloutIn, access: Releaser, state: State) -> RolloutEnvelope:
    rollout = await state.ops.rollouts.create(access.actor, access.product.id, rollout_request(body))
    return RolloutEnvelope(rollout=await _out(state, rollout))


@router.post("/v1/products/{product}/rollouts/preview", response_model=RolloutPreviewOut,
             summary="The devices and stages a rollout would have (nothing is started)")  # fmt: skip
async def preview_rollout(
    body: RolloutIn,
    access: Reader,
    state: State,
    sample: Annotated[int, Query(ge=0, le=1000, description="how many device IDs to list")] = 20,
) -> RolloutPreviewOut:
    preview = await state.ops.rollouts.preview(access.product.id, rollout_request(body), sample)
    return RolloutPreviewOut(devices=preview.devices, stages=list(preview.stages), sample=list(preview.sample))


@router.get("/v1/products/{product}/rollouts", response_model=RolloutsOut, summary="The product's rollouts")
async def list_rollouts(access: Reader, state: State) -> RolloutsOut:
    rollouts = await state.ops.rollouts.all(access.product.id)
    return RolloutsOut(rollouts=[await _out(state, r) for r in rollouts])


@router.get("/v1/products/{product}/rollouts/{rollout_id}", response_model=RolloutEnvelope, summary="One rollout")
async def get_rollout(rollout_id: RolloutPath, access: Reader, state: State) -> RolloutEnvelope:
    rollout = await state.ops.rollouts.get(access.product.id, rollout_id)
    return RolloutEnvelope(rollout=await _out(state, rollout))


@router.get(
    "/v1/products/{product}/rollouts/{rollout_id}/devices",
    response_model=RolloutDevicesOut,
    summary="Per-device states of a rollout",
)
async def rollout_devices(
    rollout_id: RolloutPath,
    access: Reader,
    state: State,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 100,
    device_state: Annotated[
        DeviceStateName | None, Query(alias="state", description="only devices in this state, e.g. failed")
    ] = None,
) -> RolloutDevicesOut:
    ops = state.ops.rollouts
    offset = (page - 1) * per_page
    if device_state is None:
        rollout = await ops.get(access.product.id, rollout_id)
        rows = await ops.devices(access.product.id, rollout.id, offset, per_page)
        total = rollout.device_count
    else:
        total, rows = await ops.devices_in_state(
            access.product.id, rollout_id, DeviceState(device_state), offset, per_page
        )
    devices = [
        RolloutDeviceOut(
            id=r.device_id,
            stage=r.stage,
            phase=r.phase.value,
            state=r.state.value,
            attempts=r.attempts,
            from_version=r.from_version,
            reason=r.reason,
            updated_at=iso(r.updated_at),
        )
        for r in rows
    ]
    return RolloutDevicesOut(devices=devices, meta=RolloutDevicesMeta(total_pages=math.ceil(total / per_page)))


async def _act(state: State, access: ProductAccess, rollout_id: int, action: str) -> RolloutEnvelope:
    ops = state.ops.rollouts
    act = {"pause": ops.pause, "resume": ops.resume, "abort": ops.abort}[action]
    rollout = await act(access.actor, access.product.id, rollout_id)
    return RolloutEnvelope(rollout=await _out(state, rollout))


@router.post("/v1/products/{product}/rollouts/{rollout_id}/pause", response_model=RolloutEnvelope,
             summary="Pause: no new offers; transfers in flight finish")  # fmt: skip
async def pause_rollout(rollout_id: RolloutPath, access: Releaser, state: State) -> RolloutEnvelope:
    return await _act(state, access, rollout_id, "pause")


@router.post("/v1/products/{product}/rollouts/{rollout_id}/resume", response_model=RolloutEnvelope,
             summary="Resume a paused rollout")  # fmt: skip
async def resume_rollout(rollout_id: RolloutPath, access: Releaser, state: State) -> RolloutEnvelope:
    return await _act(state, access, rollout_id, "resume")


@router.post("/v1/products/{product}/rollouts/{rollout_id}/abort", response_model=RolloutEnvelope,
             summary="Abort: devices not updated yet are skipped")  # fmt: skip
async def abort_rollout(rollout_id: RolloutPath, access: Releaser, state: State) -> RolloutEnvelope:
    return await _act(state, access, rollout_id, "abort")
