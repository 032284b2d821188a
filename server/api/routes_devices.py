"""A product's devices: list, show, approve / pre-add / import, deny / remove, edit."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from ..ops.base import device_id_or_invalid
from ..rules.errors import Invalid, NotFound
from ..rules.model import ListState
from ..store import Store
from ..store.records import DeviceQuery, DeviceRecord
from .bodies import device_ids, is_multipart, json_body, multipart_or_json, upload_text
from .deps import ProductAccess, State, load_product_access, product_access
from .models import (
    AddDeviceIn,
    DeviceOut,
    DevicesMeta,
    DevicesOut,
    ImportOut,
    RemoveDeviceIn,
    RemoveDeviceOut,
)
from .models_firmware import DeviceFirmwareUpdate
from .permissions import Perm
from .views import read_product_device, read_product_devices
from .views_device_firmware import with_firmware

router = APIRouter(tags=["product devices"])

DeviceIdPath = Annotated[
    str, Path(max_length=64, description="24 hex characters", json_schema_extra={"pattern": r"^[0-9a-fA-F]{24}$"})
]
_LISTED = (ListState.QUARANTINED, ListState.DENIED)


async def member_of_product(state: State, product_id: int, device_id: str) -> DeviceOut:
    """The device, if it is a member of the product (not merely on one of its lists)."""
    record = await state.ctx.store.read(state.store.get_device, device_id)
    if record is None or record.product_id != product_id:
        raise NotFound(f"device {device_id} is not a member of product {product_id}")
    return await device_in_product(state, product_id, device_id)


async def device_in_product(state: State, product_id: int, device_id: str) -> DeviceOut:
    device = await state.ctx.store.read(read_product_device, state.store, product_id, device_id)
    if device is None:
        raise NotFound(f"device {device_id} is not in product {product_id}")
    return device


async def one_device_in_product(state: State, product_id: int, device_id: str) -> DeviceOut:
    """The device with its groups, lock and firmware target: the single-device answer."""
    device = await device_in_product(state, product_id, device_id)
    return await state.ctx.store.read(with_firmware, state.store, product_id, device)


# Particle's sortAttr values, and the device column each orders by.
_SORT_ATTRS = {"deviceId": "device_id", "firmwareVersion": "firmware_version", "lastConnection": "last_heard",
               "deviceName": "name"}  # fmt: skip
_MAX_GROUPS = 64  # groups named in one filter


def _group_names(text: str | None) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in (text or "").split(",") if n.strip()))
    if len(names) > _MAX_GROUPS:
        raise Invalid(f"at most {_MAX_GROUPS} groups in one filter", "groups")
    return names


@router.get("/v1/products/{product}/devices", response_model=DevicesOut, summary="Members and listed devices")
async def list_devices(
    access: Annotated[ProductAccess, Depends(product_access(Perm.DEVICES_READ))],
    state: State,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 25,
    status: Literal["approved", "quarantined", "denied"] | None = None,
    device_id: Annotated[str | None, Query(alias="deviceId", max_length=64, description="part of the ID")] = None,
    device_name: Annotated[str | None, Query(alias="deviceName", max_length=64, description="part of the name")] = None,
    groups: Annotated[str | None, Query(max_length=4200, description="comma-separated: in any of them")] = None,
    sort_attr: Annotated[
        Literal["deviceId", "firmwareVersion", "lastConnection", "deviceName"] | None, Query(alias="sortAttr")
    ] = None,
    sort_dir: Annotated[Literal["asc", "desc"], Query(alias="sortDir")] = "asc",
    firmware_version: Annotated[
        int | None, Query(alias="firmwareVersion", ge=0, le=65535, description="running this version")
    ] = None,
    online: Annotated[bool | None, Query(description="online (true) or offline (false) only")] = None,
) -> DevicesOut:
    query = DeviceQuery(
        device_id=device_id or "",
        name=device_name or "",
        groups=_group_names(groups),
        sort=_SORT_ATTRS[sort_attr] if sort_attr else None,
        descending=sort_dir == "desc",
        firmware_version=firmware_version,
        online=online,
    )
    devices, total = await state.ctx.store.read(
        read_product_devices, state.store, access.product.id, status, (page - 1) * per_page, per_page, query
    )
    return DevicesOut(devices=devices, meta=DevicesMeta(total_pages=math.ceil(total / per_page)))


@router.get("/v1/products/{product}/devices/{device_id}", response_model=DeviceOut, summary="One device")
async def get_device(
    device_id: DeviceIdPath,
    access: Annotated[ProductAccess, Depends(product_access(Perm.DEVICES_READ))],
    state: State,
) -> DeviceOut:
    return await one_device_in_product(state, access.product.id, device_id_or_invalid(device_id))


def _record_and_state(store: Store, product_id: int, device_id: str) -> tuple[DeviceRecord | None, ListState | None]:
    return store.get_device(device_id), store.list_state(product_id, device_id)


async def add_device_as(state: State, access: ProductAccess, device_id: str, move: bool) -> str:
    """Approve or pre-add one device with the checks the caller's role needs (the API's and the
    console's one rule). Returns the outcome (Operations.add_device)."""
    product_id = access.product.id
    record, listed = await state.ctx.store.read(_record_and_state, state.store, product_id, device_id)
    member = record is not None and record.product_id == product_id
    # Approving what the product already lists is support's job; adding unseen devices is a developer's.
    access.require(Perm.DEVICE_APPROVE if member or listed in _LISTED else Perm.DEVICE_ADD)
    asked_for_us = listed is ListState.QUARANTINED and record is not None and record.firmware_product_id == product_id
    if move and record is not None and record.product_id not in (None, product_id) and not asked_for_us:
        # Taking a device whose current firmware does not ask for this product: the caller must
        # be allowed to remove it from where it is. (A list entry alone proves nothing: any
        # team can pre-add and deny an ID to put it on its own lists.)
        await load_product_access(state, access.principal, str(record.product_id), Perm.DEVICE_REMOVE)
    return await state.ops.add_device(access.actor, product_id, device_id, move=move)


async def remove_device_as(state: State, access: ProductAccess, device_id: str, deny: bool) -> str:
    """Deny or remove one device the product shows, with the permission that needs."""
    access.require(Perm.DEVICE_DENY if deny else Perm.DEVICE_REMOVE)
    # Only what the product shows: a removed device's memory (it returns to Denied) must not be erased.
    await device_in_product(state, access.product.id, device_id)
    return await state.ops.remove_device(access.actor, access.product.id, device_id, deny=deny)


async def _add_one(request: Request, state: State, access: ProductAccess) -> ImportOut:
    body = await json_body(request, AddDeviceIn)
    device_id = device_id_or_invalid(body.id)
    outcome = await add_device_as(state, access, device_id, body.move)
    updated = [] if outcome == "existing" else [device_id]
    existing = [device_id] if outcome == "existing" else []
    return ImportOut(
        updated=len(updated),
        updatedDeviceIds=updated,
        existingDeviceIds=existing,
        nonmemberDeviceIds=[],
        invalidDeviceIds=[],
        action=outcome,
    )


async def _import(request: Request, state: State, access: ProductAccess) -> ImportOut:
    access.require(Perm.DEVICE_ADD)
    ids = device_ids(await upload_text(request))
    report = await state.ops.import_devices(access.actor, access.product.id, ids)
    return ImportOut(
        updated=len(report.updated),
        updatedDeviceIds=report.updated,
        existingDeviceIds=report.existing,
        nonmemberDeviceIds=report.nonmember,
        invalidDeviceIds=[text[:64] for text in report.invalid],
    )


@router.post(
    "/v1/products/{product}/devices",
    response_model=ImportOut,
    summary="Approve, pre-add (JSON) or import (multipart file) devices",
    openapi_extra=multipart_or_json(
        AddDeviceIn.model_json_schema(),
        "JSON {id, move?} for one device, or a multipart `file`: a CSV whose first column is the"
        " device ID, or one ID per line",
    ),
)
async def add_devices(
    request: Request,
    # The lowest write permission; the route asks for more once it knows what the request does.
    access: Annotated[ProductAccess, Depends(product_access(Perm.DEVICE_APPROVE))],
    state: State,
) -> ImportOut:
    if is_multipart(request):
        return await _import(request, state, access)
    return await _add_one(request, state, access)


@router.delete(
    "/v1/products/{product}/devices/{device_id}",
    response_model=RemoveDeviceOut,
    summary="Remove a device from the product, or deny it",
)
async def remove_device(
    device_id: DeviceIdPath,
    access: Annotated[ProductAccess, Depends(product_access(Perm.DEVICE_DENY))],
    state: State,
    body: Annotated[RemoveDeviceIn | None, Body()] = None,
) -> RemoveDeviceOut:
    deny = body is not None and body.deny
    access.require(Perm.DEVICE_DENY if deny else Perm.DEVICE_REMOVE)  # before the ID is even looked at
    action = await remove_device_as(state, access, device_id_or_invalid(device_id), deny)
    return RemoveDeviceOut(action=action)


@router.put(
    "/v1/products/{product}/devices/{device_id}",
    response_model=DeviceOut,
    summary="Change a device's name, notes, development flag, groups or locked firmware version",
)
async def update_device(
    device_id: DeviceIdPath,
    body: DeviceFirmwareUpdate,
    access: Annotated[ProductAccess, Depends(product_access(Perm.DEVICE_EDIT))],
    state: State,
) -> DeviceOut:
    fields: dict[str, object] = body.model_dump(exclude_unset=True)
    groups, lock = fields.pop("groups", None), "desired_firmware_version" in fields
    fields.pop("desired_firmware_version", None)
    # Groups and locks choose the firmware a device runs: a developer's call.
    if groups is not None:
        access.require(Perm.DEVICE_GROUPS)
    if lock:
        access.require(Perm.DEVICE_FIRMWARE_LOCK)
    device_id = device_id_or_invalid(device_id)
    await device_in_product(state, access.product.id, device_id)  # 404 before changing anything
    if not fields and groups is None and not lock:
        return await one_device_in_product(state, access.product.id, device_id)
    if groups is not None or lock:  # first: it is the part that can still refuse (unknown group or version)
        await state.ops.firmware.update_device(
            access.actor, access.product.id, device_id,
            groups=body.groups, lock=lock, version=body.desired_firmware_version,
        )  # fmt: skip
    if fields:
        await state.ops.update_device(access.actor, access.product.id, device_id, fields)
    return await one_device_in_product(state, access.product.id, device_id)
