"""Customer claiming: a claim code, asked for by a customer, presented by a device in its hello.

The claim is decided inside the transaction that confirms the device's session (link/writes.py's
try_claim, by claim_refusal's rules here; after READY, so a replayed hello claims nothing): the
device becomes the customer's only when this connection holds the `claim` privilege in the code's
product and nobody owns the device yet.
Otherwise the attempt is recorded and the code stays usable until it expires. A used code is
spent. Only each code's SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from protocol.codes import Privilege

from .admission import Decision

CLAIM_CODE_BYTES = 47  # 63 characters of URL-safe base64, as long as Particle's codes
CLAIM_CODE_TTL = 24 * 3600.0  # seconds a code stays usable (Particle: a day)


def new_claim_code() -> str:
    return secrets.token_urlsafe(CLAIM_CODE_BYTES)


def code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def claim_refusal(
    found: tuple[int, int, float, str | None] | None, decision: Decision, at: float, device_owned: Callable[[], bool]
) -> str | None:
    """Why a presented code does not claim the device, or None when it does. `found` is the code's row
    (product, customer, expiry, the device that spent it); `device_owned` is asked last, only if all else holds."""
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
    if device_owned():
        return "the device already has an owner"
    return None
