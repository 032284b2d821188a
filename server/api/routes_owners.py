"""Device owners within a product, and the product-less device views (/v1/devices)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ..ops.base import device_id_or_invalid
from ..rules.errors import Invalid, NotFound
from ..rules.model import Owner
from ..store import Store
from .deps import Principal, ProductAccess, State, product_access, user_with_scope
from .models import DeviceOut, OkOut, OwnerIn
from .permissions import Perm
from .routes_devices import DeviceIdPath, member_of_product
from .views import read_devices, read_visible_device, team_products

router = APIRouter(tags=["devices"])

OwnerEditor = Annotated[ProductAccess, Depends(product_access(Perm.DEVICE_OWNER))]
DeviceReader = Annotated[Principal, Depends(user_with_scope("devices:read"))]


def _owner(store: Store, product_id: int, body: OwnerIn) -> Owner:
    if (body.user is None) == (body.customer is None):
        raise Invalid("give exactly one of user or customer", "user")
    if body.user is not None:
        user = store.get_user_by_name(body.user)
        if user is None:
            raise NotFound(f"user {body.user!r} not found", "user")
        return Owner("user", user.id)
    assert body.customer is not None
    customer = store.get_customer_by_name(product_id, body.customer)
    if customer is None:
        raise NotFound(f"customer {body.customer!r} is not a customer of product {product_id}", "customer")
    return Owner("customer", customer.id)


@router.put("/v1/products/{product}/devices/{device_id}/owner", response_model=OkOut, summary="Assign an owner")
async def set_owner(device_id: DeviceIdPath, body: OwnerIn, access: OwnerEditor, state: State) -> OkOut:
    device_id = device_id_or_invalid(device_id)
    await member_of_product(state, access.product.id, device_id)
    owner = await state.ctx.store.read(_owner, state.store, access.product.id, body)
    await state.ops.set_owner(access.actor, device_id, owner)
    return OkOut()


@router.delete("/v1/products/{product}/devices/{device_id}/owner", response_model=OkOut, summary="Clear the owner")
async def clear_owner(device_id: DeviceIdPath, access: OwnerEditor, state: State) -> OkOut:
    device_id = device_id_or_invalid(device_id)
    await member_of_product(state, access.product.id, device_id)
    await state.ops.set_owner(access.actor, device_id, None)
    return OkOut()


def _visible_devices(store: Store, user_id: int, admin: bool) -> list[DeviceOut]:
    if admin:
        return read_devices(store, None, None)
    return read_devices(store, team_products(store, user_id), Owner("user", user_id))


@router.get(
    "/v1/devices",
    response_model=list[DeviceOut],
    summary="Devices of the caller's products and devices the caller owns (admins: every registered device)",
)
async def list_all_devices(caller: DeviceReader, state: State) -> list[DeviceOut]:
    assert caller.user is not None
    return await state.ctx.store.read(_visible_devices, state.store, caller.user.id, caller.user.is_admin)


@router.get("/v1/devices/{device_id}", response_model=DeviceOut, summary="One device the caller may see")
async def get_any_device(device_id: DeviceIdPath, caller: DeviceReader, state: State) -> DeviceOut:
    assert caller.user is not None
    device_id = device_id_or_invalid(device_id)
    device = await state.ctx.store.read(
        read_visible_device, state.store, device_id, caller.user.id, caller.user.is_admin
    )
    if device is None:
        raise NotFound(f"device {device_id} not found")
    return device
