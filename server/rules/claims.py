"""Customer claiming: a claim code, asked for by a customer, presented by a device in its hello.

The claim is decided inside the transaction that confirms the device's session (after READY,
so a replayed hello claims nothing): the device becomes the customer's only when this
connection holds the `claim` privilege in the code's product and nobody owns the device yet.
Otherwise the attempt is recorded and the code stays usable until it expires. A used code is
spent. Only each code's SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets

from protocol.codes import Privilege

from ..store.base import Store
from .admission import Decision
from .model import Owner

CLAIM_CODE_BYTES = 47  # 63 characters of URL-safe base64, as long as Particle's codes
CLAIM_CODE_TTL = 24 * 3600.0  # seconds a code stays usable (Particle: a day)


def new_claim_code() -> str:
    return secrets.token_urlsafe(CLAIM_CODE_BYTES)


def code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def try_claim(store: Store, device_id: str, code: str, decision: Decision, at: float) -> str | None:
    """Apply a presented claim code (inside the confirming transaction). Returns the refusal's
    reason, or None when the device was claimed. Every outcome goes to the audit trail."""
    found = store.claim_code(code_hash(code))
    product_id = found[0] if found is not None else decision.product_id
    reason = _refusal(store, device_id, found, decision, at)
    if reason is None:
        assert found is not None
        _, customer_id, _, _ = found
        store._set_owner(device_id, Owner("customer", customer_id))
        store._spend_claim_code(code_hash(code), device_id, at)
        store._append_audit(at, "device", "device_claimed", product_id=product_id, device_id=device_id,
                            detail={"customer_id": customer_id})  # fmt: skip
        return None
    store._append_audit(at, "device", "claim_refused", product_id=product_id, device_id=device_id, reason=reason)
    return reason


def _refusal(
    store: Store, device_id: str, found: tuple[int, int, float, str | None] | None, decision: Decision, at: float
) -> str | None:
    if found is None:
        return "unknown claim code"
    product_id, _, expires_at, claimed_device = found
    if claimed_device is not None:
        return f"the claim code was already used (by {claimed_device})"
    if expires_at <= at:
        return "the claim code has expired"
    if decision.product_id != product_id:
        return f"the claim code belongs to product {product_id}, not this connection's product"
    if Privilege.CLAIM not in decision.privileges:
        return f"this connection does not hold the claim privilege (status {decision.status.name.lower()})"
    device = store.get_device(device_id)
    if device is not None and device.owner is not None:
        return "the device already has an owner"
    return None
