"""Domain vocabulary shared by admission, storage and the API: plain values, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Policy(Enum):
    """A product's policy for devices it does not recognise."""

    QUARANTINE = "quarantine"
    AUTO_APPROVE = "auto_approve"
    PREADD_ONLY = "preadd_only"


class ListState(Enum):
    """Where a device stands on one product's lists (membership itself is devices.product_id)."""

    QUARANTINED = "quarantined"
    DENIED = "denied"
    REMOVED = "removed"  # remembered so the device lands on Denied if it comes back


class Role(Enum):
    """A team member's role in one product (Particle's team roles)."""

    ADMINISTRATOR = "administrator"
    DEVELOPER = "developer"
    SUPPORT = "support"
    VIEW_ONLY = "view_only"


@dataclass(frozen=True, slots=True)
class Owner:
    kind: str  # "user" or "customer"
    id: int
