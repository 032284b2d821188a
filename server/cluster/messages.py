"""What one node tells every node: small, typed and serialisable (a NOTIFY payload is < 8000 bytes).

Each says what changed, not what to do to which connection: the node holding a device's live
session decides what that means for it (link/control.py), the others ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.codes import OtaAbortReason


@dataclass(frozen=True, slots=True)
class ReevaluateDevice:
    """The device's admission facts changed (approved, denied, removed, owner set): decide again."""

    device_id: str
    actor: str


@dataclass(frozen=True, slots=True)
class ReevaluateProduct:
    """A product's facts changed (policy, team): decide again for every session it involves."""

    product_id: int
    actor: str


@dataclass(frozen=True, slots=True)
class OfferFirmware:
    """Look at the target firmware again: the listed devices (None: every live one), and only those
    whose decision is in `product_id` (None: any product)."""

    device_ids: tuple[str, ...] | None = None
    product_id: int | None = None


@dataclass(frozen=True, slots=True)
class AbortFirmware:
    """Stop offering or sending the image these devices were given (a rollout stopped or timed out)."""

    device_ids: tuple[str, ...]
    reason: OtaAbortReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SessionReplaced:
    """The device confirmed a newer session (hello `counter`) on another node: a session of it held
    here from an older hello closes with REPLACED. On one node the registry replaces it at once
    (link/registry.py); the cluster's READY transaction sends this when the previous owner was
    another node."""

    device_id: str
    counter: int


@dataclass(frozen=True, slots=True)
class WakeRollouts:
    """A rollout may have work to do now: the scheduler (on the leader) looks before its next tick."""


@dataclass(frozen=True, slots=True)
class WebhooksChanged:
    """A product's webhooks were created, replaced or deleted: the webhook dispatch (on the leader)
    reads them again."""

    product_id: int


ControlMessage = (
    ReevaluateDevice
    | ReevaluateProduct
    | OfferFirmware
    | AbortFirmware
    | SessionReplaced
    | WakeRollouts
    | WebhooksChanged
)
