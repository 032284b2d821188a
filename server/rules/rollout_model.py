"""The rollout vocabulary: settings, states and the rows the store keeps. Plain values only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class RolloutState(Enum):
    RUNNING = "running"
    PAUSED = "paused"  # no new offers; transfers in flight finish
    COMPLETED = "completed"
    ABORTED = "aborted"
    ROLLING_BACK = "rolling_back"  # offering each updated device the version it ran before
    ROLLED_BACK = "rolled_back"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.ROLLED_BACK})
ACTIVE_STATES = tuple(s for s in RolloutState if not s.finished)


class DeviceState(Enum):
    PENDING = "pending"  # not offered yet (its stage is closed, no slot, offline, or waiting to retry)
    OFFERED = "offered"  # admitted: the offer is on its way or unanswered
    DOWNLOADING = "downloading"  # the device accepted; chunks flow (a dropped link resumes)
    INSTALLED = "installed"  # the device verified the image and reboots into it
    CONFIRMED = "confirmed"  # it came back running the version
    FAILED = "failed"  # with a reason; no more attempts
    SKIPPED = "skipped"  # the rollout ended (abort, rollback) before this device got the version
    ROLLED_BACK = "rolled_back"  # after a rollback: back on the version it ran before

    @property
    def in_flight(self) -> bool:
        return self in (DeviceState.OFFERED, DeviceState.DOWNLOADING)

    @property
    def terminal(self) -> bool:
        return self in (DeviceState.CONFIRMED, DeviceState.FAILED, DeviceState.SKIPPED, DeviceState.ROLLED_BACK)


class Phase(Enum):
    UPDATE = "update"  # moving to the rollout's version
    ROLLBACK = "rollback"  # moving back to from_version


class Strategy(Enum):
    ALL = "all"  # one stage holding every device
    STAGED = "staged"  # batches; the next opens once the success threshold is met
    EXPONENTIAL = "exponential"  # a rate per minute that grows by a factor with each step of successes


class ErrorAction(Enum):
    PAUSE = "pause"
    ABORT = "abort"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """What an operator chooses. `stages` are cumulative device counts (the last is every device)."""

    strategy: Strategy = Strategy.ALL
    stages: tuple[int, ...] = ()
    rate_start: float = 10.0  # exponential: offers per minute at first
    rate_factor: float = 2.0  # exponential: the rate grows by this factor ...
    rate_increase_every: int = 10  # ... each time this many more devices have confirmed
    max_concurrent: int = 50  # transfers in flight at once
    retries: int = 2  # further attempts after a failed one
    device_timeout: float = 600.0  # seconds from offer to installed before an attempt counts failed
    retry_delay: float = 5.0  # seconds before a failed or deferred attempt is offered again
    success_threshold: float = 1.0  # fraction of the open stages confirmed before the next opens
    error_threshold: float = 0.1  # fraction of the open stages failed that fires error_action
    error_action: ErrorAction = ErrorAction.PAUSE


@dataclass(frozen=True, slots=True)
class RolloutTarget:
    product_default: bool = False
    groups: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()  # explicit device IDs (as given; resolved at creation)


@dataclass(frozen=True, slots=True)
class Rollout:
    id: int
    product_id: int
    version: int
    target: RolloutTarget
    settings: RolloutSettings
    state: RolloutState
    state_reason: str
    current_stage: int
    rate_budget: float  # exponential: offers earned but not yet made
    error_action_fired: bool
    created_at: float
    created_by: str
    updated_at: float
    finished_at: float | None = None
    failures_forgiven: int = 0  # failed devices at the last resume: they no longer count toward the error threshold
    device_count: int = 0


@dataclass(frozen=True, slots=True)
class RolloutDevice:
    rollout_id: int
    device_id: str
    position: int  # order of offers
    stage: int  # the stage (batch) it belongs to; 0 for all and exponential
    state: DeviceState = DeviceState.PENDING
    phase: Phase = Phase.UPDATE
    attempts: int = 0  # attempts that failed
    from_version: int | None = None  # what it ran when first offered (the rollback target)
    assigned_version: int | None = None  # the version this rollout makes its target now, if any
    reason: str = ""
    offered_at: float | None = None
    next_try_at: float = 0.0
    updated_at: float = 0.0


def count_states(rows: Iterable[RolloutDevice]) -> dict[str, int]:
    """Devices per state, every state named (0 when none)."""
    out = {s.value: 0 for s in DeviceState}
    for row in rows:
        out[row.state.value] += 1
    return out


@dataclass(frozen=True, slots=True)
class RolloutCandidate:
    """A product member as a rollout's creation sees it."""

    device_id: str
    development: bool
    locked_version: int | None


@dataclass(frozen=True, slots=True)
class RolloutDeviceFacts:
    """A device as each scheduler tick sees it in the store."""

    member: bool  # still a member of the rollout's product
    firmware_version: int | None  # last reported
    development: bool
    locked_version: int | None
    came_back_old_on: int | None  # the version whose update did not take, if any
    platform_id: int | None = None  # what its last HELLO said; None before its first connection
