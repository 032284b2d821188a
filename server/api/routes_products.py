"""Products: list, create (the creator becomes its administrator), show, change name or policy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ..rules.errors import Forbidden
from .deps import Principal, ProductAccess, State, product_access, user_with_scope
from .models import DeviceCounts, ProductEnvelope, ProductIn, ProductsOut, ProductUpdate
from .permissions import Perm
from .routes_users import products_of
from .views import product_out, read_device_counts

router = APIRouter(tags=["products"])


@router.get("/v1/products", response_model=ProductsOut, summary="Products the caller works on (admins: all)")
async def list_products(
    caller: Annotated[Principal, Depends(user_with_scope("products:read"))], state: State
) -> ProductsOut:
    assert caller.user is not None
    rows = await state.ctx.store.read(products_of, state.store, caller.user.id, caller.user.is_admin)
    return ProductsOut(products=[product_out(p) for p, _ in rows])


@router.post("/v1/products", response_model=ProductEnvelope, status_code=201, summary="Create a product")
async def create_product(
    body: ProductIn, caller: Annotated[Principal, Depends(user_with_scope("products:write"))], state: State
) -> ProductEnvelope:
    assert caller.user is not None
    if body.id is not None and not caller.user.is_admin:
        # Firmware compiles the product ID in: whoever picks an ID that devices already report
        # would receive them (with auto_approve). Other users get the next free ID.
        raise Forbidden("only a server admin may choose a product ID", "id")
    product = await state.ops.create_product(
        caller.actor, body.name, slug=body.slug, product_id=body.id, policy=body.policy, administrator=caller.user
    )
    return ProductEnvelope(product=product_out(product, DeviceCounts(approved=0, quarantined=0, denied=0)))


@router.get("/v1/products/{product}", response_model=ProductEnvelope, summary="One product")
async def get_product(
    access: Annotated[ProductAccess, Depends(product_access(Perm.PRODUCT_READ))], state: State
) -> ProductEnvelope:
    counts = await state.ctx.store.read(read_device_counts, state.store, access.product.id)
    return ProductEnvelope(product=product_out(access.product, counts))


@router.put("/v1/products/{product}", response_model=ProductEnvelope, summary="Change name or policy")
async def update_product(
    body: ProductUpdate,
    access: Annotated[ProductAccess, Depends(product_access(Perm.PRODUCT_EDIT))],
    state: State,
) -> ProductEnvelope:
    product = await state.ops.update_product(access.actor, access.product.id, name=body.name, policy=body.policy)
    counts = await state.ctx.store.read(read_device_counts, state.store, product.id)
    return ProductEnvelope(product=product_out(product, counts))
