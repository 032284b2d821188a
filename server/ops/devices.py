"""Operator actions on devices: register keys, add (approve), deny or remove, edit, set the owner.

Each that changes what a device may do has its live session re-decided, on the node holding it (the
cluster bus: base.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from protocol.messages import parse_device_id, parse_public_key

from ..cluster import ReevaluateDevice
from ..logs import now
from ..rules.errors import Conflict, Invalid, NotFound
from ..rules.model import ListState, Owner
from ..store.tx import StoreTx
from .base import OpsBase, device_id_or_invalid


@dataclass(slots=True)
class ImportReport:
    """Particle's shape for adding devices to a product."""

    updated: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    nonmember: list[str] = field(default_factory=list)  # belong to another product: not moved
    invalid: list[str] = field(default_factory=list)


class DeviceOperations(OpsBase):
    async def provision(self, actor: str, rows: Iterable[tuple[str, str]]) -> tuple[list[str], list[tuple[str, str]]]:
        """Register device public keys. Returns (registered IDs, [(id, error)])."""
        good: list[tuple[str, bytes]] = []
        errors: list[tuple[str, str]] = []
        for device_text, key_text in rows:
            try:
                good.append((parse_device_id(device_text).hex(), parse_public_key(key_text)))
            except ValueError as exc:
                errors.append((device_text, str(exc)))

        def tx(s: StoreTx) -> list[str]:
            result = s.add_device_keys(good, now())
            errors.extend(result.errors)
            for device_id in result.added:
                s.append_audit(now(), actor, "key_registered", device_id=device_id)
            return result.added + result.unchanged

        return await self.tx("provision", tx), errors

    # ------------------------------------------------------------------ product devices

    async def add_device(self, actor: str, key: int | str, device_text: str, *, move: bool = False) -> str:
        """Pre-add, or approve from quarantine or Denied. Returns what happened: preadded, approved
        (from quarantine), reapproved (from Denied) or existing (already a member)."""
        product = await self.product(key)
        device_id = device_id_or_invalid(device_text)

        def tx(s: StoreTx) -> str:
            self.notify(s, ReevaluateDevice(device_id, actor))
            record = s.get_device(device_id)
            state = s.list_state(product.id, device_id)
            if record is not None and record.product_id == product.id:
                if state is not None:
                    s.set_list_state(product.id, device_id, None, now())
                return "existing"
            if record is not None and record.product_id is not None and not move:
                raise Conflict(
                    f"device {device_id} belongs to product {record.product_id}; approve with move=true to move it",
                    "move",
                )
            s.ensure_device(device_id, now())
            s.set_membership(device_id, product.id)
            s.set_list_state(product.id, device_id, None, now())
            action = "approved" if state in (ListState.QUARANTINED, ListState.DENIED) else "preadded"
            detail: dict[str, object] = {"from": state.value if state else None}
            if record is not None and record.product_id is not None:
                detail["moved_from_product"] = record.product_id
            s.append_audit(now(), actor, action, product_id=product.id, device_id=device_id, detail=detail)
            return "reapproved" if state is ListState.DENIED else action  # the audit says it in detail.from

        return await self.tx("add_device", tx)

    async def import_devices(self, actor: str, key: int | str, device_texts: Iterable[str]) -> ImportReport:
        product = await self.product(key)
        report = ImportReport()
        for text in device_texts:
            try:
                outcome = await self.add_device(actor, product.id, text)
            except Invalid:
                report.invalid.append(text)
            except Conflict:
                report.nonmember.append(text.strip().lower())
            else:
                (report.existing if outcome == "existing" else report.updated).append(text.strip().lower())
        return report

    async def remove_device(self, actor: str, key: int | str, device_text: str, *, deny: bool) -> str:
        """Deny (to the Denied list) or remove (leave the product, remembered as removed)."""
        product = await self.product(key)
        device_id = device_id_or_invalid(device_text)

        def tx(s: StoreTx) -> str:
            self.notify(s, ReevaluateDevice(device_id, actor))
            record = s.get_device(device_id)
            state = s.list_state(product.id, device_id)
            member = record is not None and record.product_id == product.id
            # REMOVED is a memory, not a list: a removed device is no longer in the product,
            # and removing it again must not erase what makes it land on Denied later.
            if not member and state not in (ListState.QUARANTINED, ListState.DENIED):
                raise NotFound(f"device {device_id} is not in product {product.id}")
            if member:
                s.set_membership(device_id, None)
            if deny:
                s.set_list_state(product.id, device_id, ListState.DENIED, now())
                action = "denied"
            elif member:
                s.set_list_state(product.id, device_id, ListState.REMOVED, now())
                action = "removed"
            else:  # a quarantined or denied non-member: forget it
                s.set_list_state(product.id, device_id, None, now())
                action = "unlisted"
            s.append_audit(
                now(), actor, action, product_id=product.id, device_id=device_id,
                detail={"was_member": member, "was": state.value if state else None},
            )  # fmt: skip
            return action

        return await self.tx("remove_device", tx)

    async def update_device(self, actor: str, key: int | str, device_text: str, fields: dict[str, object]) -> None:
        product = await self.product(key)
        device_id = device_id_or_invalid(device_text)
        for name, value in fields.items():
            if name == "development" and not isinstance(value, bool):
                raise Invalid("development must be true or false", name)
            if name in ("name", "notes") and value is not None and (not isinstance(value, str) or len(value) > 1024):
                raise Invalid(f"{name} must be text of at most 1024 characters", name)

        def tx(s: StoreTx) -> None:
            record = s.get_device(device_id)
            # Members only: a list entry does not make another product's device ours to edit.
            if record is None or record.product_id != product.id:
                raise NotFound(f"device {device_id} is not a member of product {product.id}")
            s.update_device_fields(device_id, {k: (int(v) if isinstance(v, bool) else v) for k, v in fields.items()})
            s.append_audit(now(), actor, "device_updated", product_id=product.id, device_id=device_id, detail=fields)

        await self.tx("update_device", tx)

    async def set_owner(self, actor: str, device_text: str, owner: Owner | None) -> None:
        device_id = device_id_or_invalid(device_text)

        def tx(s: StoreTx) -> None:
            self.notify(s, ReevaluateDevice(device_id, actor))
            record = s.get_device(device_id)
            if record is None:
                raise NotFound(f"device {device_id} not found")
            s.set_owner(device_id, owner)
            s.append_audit(
                now(), actor, "owner_set" if owner else "owner_cleared", device_id=device_id,
                product_id=record.product_id,
                detail={"owner": f"{owner.kind}:{owner.id}" if owner else None},
            )  # fmt: skip

        await self.tx("set_owner", tx)
