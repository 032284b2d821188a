"""The devices hub and the device page, with their forms. Every action runs the API's own
function for it (routes_devices.add_device_as / remove_device_as, Operations) under the same
permission checks; a form answers with a redirect and a one-time notice."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from starlette.responses import RedirectResponse, Response

from ..api.bodies import device_ids
from ..api.deps import ProductAccess, State
from ..api.permissions import Perm
from ..api.routes_devices import DeviceIdPath, add_device_as, device_in_product, remove_device_as
from ..ops.base import device_id_or_invalid
from ..rules.errors import Invalid
from ..store.records import DeviceQuery
from .access import product_page
from .flash import set_flash
from .hub_view import read_device_page, read_hub
from .render import page
from .session import check_csrf

router = APIRouter(prefix="/console/products/{product}", include_in_schema=False)

PER_PAGE = 50
MAX_SELECTED = 500  # devices one bulk form may name
SORTS = {"added": None, "id": "device_id", "name": "name", "firmware": "firmware_version", "heard": "last_heard"}
Reader = Annotated[ProductAccess, Depends(product_page(Perm.DEVICES_READ))]
# A form's lowest write permission; each action asks for what it needs once it knows what it does.
Writer = Annotated[ProductAccess, Depends(product_page(Perm.DEVICES_READ))]
CSRF = [Depends(check_csrf)]


def _hub_url(access: ProductAccess) -> str:
    return f"/console/products/{access.product.id}/devices"


def _back(access: ProductAccess, next_url: str | None) -> str:
    """Where a form returns: a page of this product's console, else its hub."""
    base = f"/console/products/{access.product.id}/"
    if next_url and next_url.startswith(base) and "//" not in next_url and "\\" not in next_url:
        return next_url
    return _hub_url(access)


def _done(access: ProductAccess, next_url: str | None, notice: str) -> Response:
    response = RedirectResponse(_back(access, next_url), status_code=303)
    set_flash(response, notice)
    return response


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@router.get("/devices")
async def hub(
    request: Request,
    access: Reader,
    state: State,
    status: Literal["approved", "quarantined", "denied", "all"] = "approved",
    device_id: Annotated[str, Query(alias="id", max_length=64)] = "",
    name: Annotated[str, Query(max_length=64)] = "",
    group: Annotated[str, Query(max_length=64)] = "",
    firmware: Annotated[int | None, Query(ge=0, le=65535)] = None,
    online: Literal["", "yes", "no"] = "",
    sort: Literal["added", "id", "name", "firmware", "heard"] = "added",
    order: Literal["asc", "desc"] = "asc",
    page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> Response:
    query = DeviceQuery(
        device_id=device_id.strip().lower(),
        name=name.strip(),
        groups=(group,) if group else (),
        sort=SORTS[sort],
        descending=order == "desc",
        firmware_version=firmware,
        online=None if not online else online == "yes",
    )
    listed_status = None if status == "all" else status
    view = await state.ctx.store.read(
        read_hub, state.store, access.product.id, listed_status, query, (page_no - 1) * PER_PAGE, PER_PAGE
    )
    filters = {"status": status, "id": device_id, "name": name, "group": group, "firmware": firmware,
               "online": online, "sort": sort, "order": order}  # fmt: skip
    return page(
        request, "hub.html", access.principal, access, tab="devices", hub=view, filters=filters, page_no=page_no,
        pages=max(1, math.ceil(view.listed.total / PER_PAGE)),
    )  # fmt: skip


def _chosen(only: str | None, selected: list[str]) -> list[str]:
    ids = [only] if only else selected
    if not ids:
        raise Invalid("select at least one device", "device")
    if len(ids) > MAX_SELECTED:
        raise Invalid(f"at most {MAX_SELECTED} devices at once", "device")
    return [device_id_or_invalid(d) for d in ids]


@router.post("/devices/approve", dependencies=CSRF)
async def approve(
    access: Writer,
    state: State,
    device: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    only: Annotated[str | None, Form(max_length=64)] = None,
    next: Annotated[str | None, Form(max_length=2048)] = None,
) -> Response:
    ids = _chosen(only, device)
    access.require(Perm.DEVICE_APPROVE)  # before anything is done: a forged form changes nothing
    outcomes = [await add_device_as(state, access, d, move=False) for d in ids]
    changed = sum(1 for o in outcomes if o != "existing")
    return _done(access, next, f"{_plural(changed, 'device')} approved")


@router.post("/devices/deny", dependencies=CSRF)
async def deny(
    access: Writer,
    state: State,
    device: Annotated[list[str], Form()] = [],  # noqa: B006
    only: Annotated[str | None, Form(max_length=64)] = None,
    next: Annotated[str | None, Form(max_length=2048)] = None,
) -> Response:
    ids = _chosen(only, device)
    access.require(Perm.DEVICE_DENY)
    for d in ids:
        await remove_device_as(state, access, d, deny=True)
    return _done(access, next, f"{_plural(len(ids), 'device')} denied")


@router.post("/devices/import", dependencies=CSRF)
async def import_devices(
    access: Writer,
    state: State,
    ids: Annotated[str, Form(max_length=1_000_000)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    access.require(Perm.DEVICE_ADD)
    text = ids
    if file is not None and file.filename:
        text += "\n" + (await file.read(2 * 1024 * 1024)).decode("utf-8", "replace")
    listed = device_ids(text)
    if not listed:
        raise Invalid("paste device IDs (one a line) or choose a .txt file", "ids")
    report = await state.ops.import_devices(access.actor, access.product.id, listed)
    parts = [f"{_plural(len(report.updated), 'device')} added"]
    if report.existing:
        parts.append(f"{len(report.existing)} already members")
    if report.nonmember:
        parts.append(f"{len(report.nonmember)} belong to another product")
    if report.invalid:
        parts.append(f"{len(report.invalid)} not device IDs")
    return _done(access, None, ", ".join(parts))


@router.get("/devices/{device_id}")
async def device_page(request: Request, device_id: DeviceIdPath, access: Reader, state: State) -> Response:
    device = await device_in_product(state, access.product.id, device_id_or_invalid(device_id))
    view = await state.ctx.store.read(read_device_page, state.store, access.product.id, device)
    return page(request, "device.html", access.principal, access, tab="devices", view=view, d=view.device)


@router.post("/devices/{device_id}/edit", dependencies=CSRF)
async def edit(
    device_id: DeviceIdPath,
    access: Writer,
    state: State,
    name: Annotated[str, Form(max_length=1024)] = "",
    notes: Annotated[str, Form(max_length=1024)] = "",
    development: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    access.require(Perm.DEVICE_EDIT)
    device_id = device_id_or_invalid(device_id)
    fields: dict[str, object] = {"name": name.strip() or None, "notes": notes or None, "development": bool(development)}
    await state.ops.update_device(access.actor, access.product.id, device_id, fields)
    return _done(access, f"{_hub_url(access)}/{device_id}", "device saved")


@router.post("/devices/{device_id}/groups", dependencies=CSRF)
async def set_groups(
    device_id: DeviceIdPath,
    access: Writer,
    state: State,
    group: Annotated[list[str], Form()] = [],  # noqa: B006
) -> Response:
    access.require(Perm.DEVICE_GROUPS)
    device_id = device_id_or_invalid(device_id)
    await device_in_product(state, access.product.id, device_id)
    await state.ops.firmware.update_device(access.actor, access.product.id, device_id, groups=group)
    return _done(access, f"{_hub_url(access)}/{device_id}", "groups saved")


@router.post("/devices/{device_id}/lock", dependencies=CSRF)
async def lock(
    device_id: DeviceIdPath,
    access: Writer,
    state: State,
    version: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    access.require(Perm.DEVICE_FIRMWARE_LOCK)
    device_id = device_id_or_invalid(device_id)
    if version and not version.isdigit():
        raise Invalid("choose a firmware version", "version")
    locked = int(version) if version else None
    await device_in_product(state, access.product.id, device_id)
    await state.ops.firmware.update_device(access.actor, access.product.id, device_id, lock=True, version=locked)
    return _done(access, f"{_hub_url(access)}/{device_id}", f"locked to {locked}" if locked else "unlocked")


@router.post("/devices/{device_id}/remove", dependencies=CSRF)
async def remove(
    device_id: DeviceIdPath,
    access: Writer,
    state: State,
    deny: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    access.require(Perm.DEVICE_DENY if deny else Perm.DEVICE_REMOVE)
    device_id = device_id_or_invalid(device_id)
    action = await remove_device_as(state, access, device_id, deny=bool(deny))
    return _done(access, None, f"device {device_id} {action}")
