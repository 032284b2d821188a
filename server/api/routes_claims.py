"""Claim codes (Particle's path): a product's customer asks for one and gives it to a device."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ..logs import now
from ..rules.claims import CLAIM_CODE_TTL, code_hash, new_claim_code
from ..rules.errors import Forbidden, NotFound
from ..store import Transaction
from ..store.tx import StoreTx
from .deps import Caller, ProductPath, State, product_key
from .views import iso

router = APIRouter(tags=["claiming"])


class ClaimCodeOut(BaseModel):
    claim_code: str = Field(description="give it to the device; it presents it in its hello (single use)")
    expires_at: str
    device_ids: list[str] = Field(description="devices this customer already owns in the product")


@router.post("/v1/products/{product}/device_claims", response_model=ClaimCodeOut, status_code=201,
             summary="A claim code for the calling customer")  # fmt: skip
async def create_claim_code(product: ProductPath, caller: Caller, state: State) -> ClaimCodeOut:
    customer = caller.customer
    if customer is None:
        raise Forbidden("claim codes are for a product's customers: log in as the customer")
    key = product_key(product)
    record = None if key is None else await state.ctx.store.read(state.store.get_product, key)
    if record is None:
        raise NotFound(f"product {product[:64]!r} not found")
    if record.id != customer.product_id:
        raise Forbidden(f"you are a customer of product {customer.product_id}, not {record.id}")
    code, at = new_claim_code(), now()
    expires = at + CLAIM_CODE_TTL

    def tx(s: StoreTx) -> list[str]:
        s.insert_claim_code(code_hash(code), record.id, customer.id, at, expires)
        s.append_audit(at, caller.actor, "claim_code_created", product_id=record.id,
                        detail={"expires_at": expires})  # fmt: skip
        return [d.device_id for d in s.list_devices() if d.owner is not None and d.owner.kind == "customer"
                and d.owner.id == customer.id]  # fmt: skip

    owned = await state.ctx.store.write(Transaction(tx, "claim_code"))
    assert isinstance(owned, list)
    return ClaimCodeOut(claim_code=code, expires_at=iso(expires), device_ids=owned)
