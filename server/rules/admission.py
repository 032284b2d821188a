"""Admission: which status and product privileges one connection gets. One pure function.

`decide(device, fw_product_id, fw_product)` applies the rules of DESIGN.md section 3 (Particle's
"device security at scale") in this order; the first row that matches wins:

| # | condition                                          | status      | privileges | effects                         |
|---|----------------------------------------------------|-------------|------------|---------------------------------|
| 1 | firmware reports no product (development firmware) | DEVELOPMENT | none       | clear Denied lists and removals |
| 2 | firmware product == cloud product                  | OK          | all        |                                 |
| 3 | firmware names a product that does not exist       | LIMITED     | none       |                                 |
| 4 | device is on fw's Denied list                      | DENIED      | none       |                                 |
| 5 | device was removed from fw earlier                 | DENIED      | none       | removed -> Denied list          |
| 6 | fw's policy is quarantine                          | QUARANTINED | none       | enter fw's quarantine           |
| 7 | auto_approve, no cloud product, unowned/fw team's  | OK          | all        | join fw                         |
| 8 | auto_approve otherwise                             | QUARANTINED | none       | enter fw's quarantine           |
| 9 | preadd_only                                        | LIMITED     | none       | record the attempt              |

Whenever the device belongs to a cloud product other than fw's (rows 3-9), the decision is
flagged `mismatch`: the device gets no privileges in its cloud product either ("limited for
cloud's product too"), and it may sit in fw's quarantine, where approving it moves it to fw
only when the operator says so explicitly.

Deny by default: privileges come only from rows 2 and 7. Row 2 precedes the list rows, which is
safe because operations keep membership and a list entry of the same product exclusive: Deny
and Remove clear membership in the same transaction, Approve, Pre-add and JOIN clear the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from protocol.codes import Privilege, Status

from .model import ListState, Owner, Policy

__all__ = ["Decision", "DeviceFacts", "Effect", "ListState", "Owner", "Policy", "ProductFacts", "decide"]


class Effect(Enum):
    """What confirming a decision changes in the store."""

    JOIN = "join"  # the device becomes a member of fw's product
    QUARANTINE = "quarantine"  # the device is put on fw's quarantine list
    REMOVED_TO_DENIED = "removed_to_denied"  # a removed device reappears on fw's Denied list
    LEAVE_DENIED_LISTS = "leave_denied_lists"  # development firmware clears every Denied list and removal
    RECORD_PREADD_ATTEMPT = "record_preadd_attempt"  # a preadd_only product saw an unknown device


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the cloud knows about the device."""

    cloud_product_id: int | None  # the product the device is a member of
    owner: Owner | None = None


@dataclass(frozen=True, slots=True)
class ProductFacts:
    """What the cloud knows about the product the firmware reports, as seen by this device."""

    id: int
    policy: Policy
    team_user_ids: frozenset[int] = frozenset()
    device_list_state: ListState | None = None  # this device's entry on the product's lists


@dataclass(frozen=True, slots=True)
class Decision:
    status: Status
    privileges: Privilege
    product_id: int | None  # the product the status refers to (the firmware's)
    reason: str  # for the log and the audit trail
    effects: frozenset[Effect] = frozenset()
    mismatch: bool = False  # the device belongs to a different product than its firmware reports


def _no_privileges(status: Status, fw: int, reason: str, mismatch: bool, *effects: Effect) -> Decision:
    return Decision(status, Privilege.NONE, fw, reason, frozenset(effects), mismatch)


def decide(device: DeviceFacts, fw_product_id: int | None, fw_product: ProductFacts | None) -> Decision:
    """Decide one connection. `fw_product` describes fw_product_id, or is None if no such product."""
    cloud = device.cloud_product_id
    if fw_product_id is None:
        return Decision(
            Status.DEVELOPMENT,
            Privilege.NONE,
            None,
            "development firmware reports no product",
            frozenset({Effect.LEAVE_DENIED_LISTS}),
        )
    if fw_product_id == cloud:
        return Decision(Status.OK, Privilege.all(), fw_product_id, "firmware product matches the device's product")
    mismatch = cloud is not None
    if fw_product is None:
        return _no_privileges(Status.LIMITED, fw_product_id, "firmware names no existing product", mismatch)
    if fw_product.id != fw_product_id:
        raise ValueError("fw_product must describe the product the firmware reports")
    state = fw_product.device_list_state
    if state is ListState.DENIED:
        return _no_privileges(Status.DENIED, fw_product_id, "device is on the product's Denied list", mismatch)
    if state is ListState.REMOVED:
        return _no_privileges(
            Status.DENIED,
            fw_product_id,
            "device was removed from the product and came back",
            mismatch,
            Effect.REMOVED_TO_DENIED,
        )
    policy = fw_product.policy
    if policy is Policy.QUARANTINE:
        return _no_privileges(
            Status.QUARANTINED, fw_product_id, "unrecognised device: product quarantines", mismatch, Effect.QUARANTINE
        )
    if policy is Policy.AUTO_APPROVE:
        owner = device.owner
        owner_ok = owner is None or (owner.kind == "user" and owner.id in fw_product.team_user_ids)
        if cloud is None and owner_ok:
            return Decision(
                Status.OK,
                Privilege.all(),
                fw_product_id,
                "auto-approved: unowned or owned by a team member, in no other product",
                frozenset({Effect.JOIN}),
            )
        why = "belongs to another product" if cloud is not None else "owned by someone outside the product's team"
        return _no_privileges(
            Status.QUARANTINED, fw_product_id, f"not auto-approved: device {why}", mismatch, Effect.QUARANTINE
        )
    return _no_privileges(
        Status.LIMITED,
        fw_product_id,
        "product accepts pre-added devices only",
        mismatch,
        Effect.RECORD_PREADD_ATTEMPT,
    )
