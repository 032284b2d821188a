"""Device groups of a product (Particle's paths): list, create, show, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from .deps import ProductAccess, State, product_access
from .models import OkOut
from .models_firmware import GroupEnvelope, GroupIn, GroupsOut
from .permissions import Perm
from .views_firmware import group_out

router = APIRouter(tags=["device groups"])

Reader = Annotated[ProductAccess, Depends(product_access(Perm.DEVICES_READ))]
Editor = Annotated[ProductAccess, Depends(product_access(Perm.GROUPS_EDIT))]
GroupPath = Annotated[str, Path(max_length=64, description="group name")]


@router.get("/v1/products/{product}/groups", response_model=GroupsOut, summary="The product's device groups")
async def list_groups(access: Reader, state: State) -> GroupsOut:
    return GroupsOut(groups=[group_out(g) for g in await state.ops.firmware.groups(access.product.id)])


@router.post("/v1/products/{product}/groups", response_model=GroupEnvelope, status_code=201, summary="Create a group")
async def create_group(body: GroupIn, access: Editor, state: State) -> GroupEnvelope:
    group = await state.ops.firmware.create_group(access.actor, access.product.id, body.name, body.description)
    return GroupEnvelope(group=group_out(group))


@router.get("/v1/products/{product}/groups/{name}", response_model=GroupEnvelope, summary="One group")
async def get_group(name: GroupPath, access: Reader, state: State) -> GroupEnvelope:
    return GroupEnvelope(group=group_out(await state.ops.firmware.group(access.product.id, name)))


@router.delete("/v1/products/{product}/groups/{name}", response_model=OkOut, summary="Delete a group")
async def delete_group(name: GroupPath, access: Editor, state: State) -> OkOut:
    await state.ops.firmware.delete_group(access.actor, access.product.id, name)
    return OkOut()
