"""Admission: which status and product privileges a connection gets. One pure function.

The product rules (DESIGN.md section 3) need products; until products exist in the store
every product a firmware names is unknown, so the applicable rows are:

| firmware reports            | status      | privileges |
|-----------------------------|-------------|------------|
| no product (development fw) | DEVELOPMENT | none       |
| a product the cloud lacks   | LIMITED     | none       |
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.codes import Privilege, Status
from protocol.messages import Hello

from .store import DeviceRecord


@dataclass(frozen=True, slots=True)
class Decision:
    status: Status
    privileges: Privilege
    product_id: int | None  # the product the status refers to
    reason: str  # for the log and the audit trail


def decide(device: DeviceRecord, hello: Hello) -> Decision:
    if hello.product_id is None:
        return Decision(Status.DEVELOPMENT, Privilege.NONE, None, "development firmware reports no product")
    return Decision(Status.LIMITED, Privilege.NONE, hello.product_id, "firmware names no existing product")
