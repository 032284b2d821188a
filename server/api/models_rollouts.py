"""Request and response bodies for staged rollouts (Fleetgate's own: Particle has no rollouts)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from .models import Request
from .models_firmware import FirmwareVersion, GroupNames

Number = StrictInt | StrictFloat
DeviceId = Annotated[StrictStr, Field(max_length=64, json_schema_extra={"pattern": r"^\s*[0-9a-fA-F]{24}\s*$"})]
DeviceIds = Annotated[list[DeviceId], Field(max_length=100_000)]
Stages = Annotated[list[StrictInt | Annotated[StrictStr, Field(max_length=16)]], Field(max_length=32)]


def _ranged(default: float, low: float, high: float, description: str) -> Any:
    """A field whose range the schema states; check_settings enforces it, with its own messages."""
    return Field(default, json_schema_extra={"minimum": low, "maximum": high}, description=description)


class RolloutIn(Request):
    # The ranges check_settings enforces, stated in the schema.
    version: FirmwareVersion
    product_default: StrictBool = Field(False, description="target: every member of the product")
    groups: GroupNames = Field(default_factory=list, description="target: members of these groups")
    devices: DeviceIds = Field(default_factory=list, description="target: these device IDs")
    strategy: Literal["all", "staged", "exponential"] = "all"
    stages: Stages = Field(
        default_factory=list, description='staged: cumulative counts or percentages, e.g. ["5%", "25%", "100%"]'
    )
    rate_start: Number = _ranged(10, 0.1, 1_000_000, "exponential: offers per minute at first")
    rate_factor: Number = _ranged(2, 1, 100, "exponential: the rate's growth factor ...")
    rate_increase_every: StrictInt = _ranged(10, 1, 1_000_000, "... each time this many more devices confirmed")
    max_concurrent: StrictInt = _ranged(50, 1, 100_000, "transfers in flight at once")
    retries: StrictInt = _ranged(2, 0, 100, "further attempts for a device after a failed one")
    device_timeout: Number = _ranged(600, 1, 7 * 86400, "seconds from offer to installed before an attempt fails")
    retry_delay: Number = _ranged(5, 0, 86400, "seconds before a failed or deferred device is offered again")
    success_threshold: Number = _ranged(1.0, 0, 1, "fraction of the open stages confirmed before the next opens")
    error_threshold: Number = Field(
        0.1,
        json_schema_extra={"exclusiveMinimum": 0, "maximum": 1},
        description="fraction of the open stages failed that fires error_action",
    )
    error_action: Literal["pause", "abort", "rollback"] = "pause"


class RolloutTargetOut(BaseModel):
    product_default: bool
    groups: list[str]
    devices: int = Field(description="devices in the rollout")


class StageCountsOut(BaseModel):
    stage: int
    size: int
    counts: dict[str, int]


class RolloutOut(BaseModel):
    id: int
    product_id: int
    version: int
    state: str
    state_reason: str
    target: RolloutTargetOut
    strategy: str
    stages: list[int] = Field(description="cumulative device counts per stage")
    current_stage: int
    max_concurrent: int
    retries: int
    device_timeout: float
    retry_delay: float
    success_threshold: float
    error_threshold: float
    error_action: str
    error_action_fired: bool
    rate_start: float
    rate_factor: float
    rate_increase_every: int
    counts: dict[str, int] = Field(description="devices per state")
    stage_counts: list[StageCountsOut]
    created_at: str
    created_by: str
    updated_at: str
    finished_at: str | None


class RolloutEnvelope(BaseModel):
    rollout: RolloutOut


class RolloutsOut(BaseModel):
    rollouts: list[RolloutOut]


class RolloutDeviceOut(BaseModel):
    id: str
    stage: int
    phase: str
    state: str
    attempts: int
    from_version: int | None
    reason: str
    updated_at: str


class RolloutDevicesMeta(BaseModel):
    total_pages: int


class RolloutDevicesOut(BaseModel):
    devices: list[RolloutDeviceOut]
    meta: RolloutDevicesMeta


class RolloutPreviewOut(BaseModel):
    """What POST .../rollouts with the same body would start now (nothing is started)."""

    devices: int = Field(description="devices the rollout would hold")
    stages: list[int] = Field(description="cumulative device counts per stage")
    sample: list[str] = Field(description="the first of them, in offer order")
