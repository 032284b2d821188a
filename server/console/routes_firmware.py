"""The console's firmware: versions (title, size, SHA-256, signature, where released), upload
(the server's header check answers on the page), release after a confirmation naming the devices
it will update (ops.firmware.release_preview), and delete before release."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from ..api.deps import ProductAccess, State
from ..api.firmware_form import read_upload
from ..api.permissions import Perm
from ..rules.errors import OperationError
from .access import product_page
from .product_pages import back
from .render import page
from .session import CSRF_FIELD, CsrfChecked, check_csrf

router = APIRouter(prefix="/console/products/{product}", include_in_schema=False)

Reader = Annotated[ProductAccess, Depends(product_page(Perm.FIRMWARE_READ))]
Version = Annotated[int, Path(ge=1, le=65535)]
SAMPLE = 50  # devices named in a release's confirmation


async def _list_page(request: Request, access: ProductAccess, state: State, **extra: Any) -> Response:
    versions = await state.ctx.store.read(state.store.list_firmware, access.product.id)
    return page(request, "firmware.html", access.principal, access, tab="firmware", versions=versions, **extra)


@router.get("/firmware")
async def firmware(request: Request, access: Reader, state: State) -> Response:
    return await _list_page(request, access, state)


@router.post("/firmware")
async def upload(request: Request, access: Reader, state: State) -> Response:
    try:  # the CSRF check inside: the multipart body spools to temporary files, closed however this ends
        await check_csrf(request)
        access.require(Perm.FIRMWARE_UPLOAD)
        try:
            form = await read_upload(request, state.ctx.config.max_firmware_size, frozenset({CSRF_FIELD}))
            record = await state.ops.firmware.upload(
                access.actor, access.product.id, form.data, version=form.version, title=form.title,
                description=form.description, name=form.file_name, signature=form.signature,
            )  # fmt: skip
        except OperationError as exc:
            field = f" ({exc.field})" if exc.field else ""
            return await _list_page(request, access, state, upload_error=f"{exc.message}{field}", status=400)
    finally:
        await request.close()
    return back(f"/console/products/{access.product.id}/firmware", f"Version {record.version} uploaded.")


@router.post("/firmware/{version}/delete", dependencies=[CsrfChecked])
async def delete(version: Version, access: Reader, state: State) -> Response:
    access.require(Perm.FIRMWARE_UPLOAD)
    await state.ops.firmware.delete(access.actor, access.product.id, version)
    return back(f"/console/products/{access.product.id}/firmware", f"Version {version} deleted.")


async def _release_page(request: Request, access: ProductAccess, state: State, version: int, **extra: Any) -> Response:
    record = await state.ops.firmware.get(access.product.id, version)
    groups = await state.ops.firmware.groups(access.product.id)
    extra.setdefault("chosen", {"product_default": record.product_default, "groups": list(record.groups)})
    return page(request, "firmware_release.html", access.principal, access, tab="firmware", firmware=record,
                groups=groups, **extra)  # fmt: skip


async def _targets(request: Request) -> tuple[bool, list[str], bool]:
    form = await request.form()
    groups = [g for g in form.getlist("groups") if isinstance(g, str)]
    return form.get("product_default") == "on", groups, form.get("intelligent") == "on"


@router.get("/firmware/{version}/release")
async def release_form(request: Request, version: Version, access: Reader, state: State) -> Response:
    return await _release_page(request, access, state, version)


@router.post("/firmware/{version}/release/preview", dependencies=[CsrfChecked])
async def release_preview(request: Request, version: Version, access: Reader, state: State) -> Response:
    """Step one: the devices this release will update. Nothing is released yet."""
    product_default, groups, intelligent = await _targets(request)
    chosen = {"product_default": product_default, "groups": groups, "intelligent": intelligent}
    try:
        impacted = await state.ops.firmware.release_preview(
            access.product.id, version, product_default=product_default, groups=groups
        )
    except OperationError as exc:
        return await _release_page(request, access, state, version, chosen=chosen, error=exc.message, status=400)
    return await _release_page(request, access, state, version, chosen=chosen, impacted=impacted[:SAMPLE],
                               impacted_total=len(impacted))  # fmt: skip


@router.post("/firmware/{version}/release", dependencies=[CsrfChecked])
async def release(request: Request, version: Version, access: Reader, state: State) -> Response:
    access.require(Perm.FIRMWARE_RELEASE)
    product_default, groups, intelligent = await _targets(request)
    try:
        await state.ops.firmware.release(
            access.actor, access.product.id, version, product_default=product_default, groups=groups,
            intelligent=intelligent,
        )  # fmt: skip
    except OperationError as exc:
        chosen = {"product_default": product_default, "groups": groups, "intelligent": intelligent}
        return await _release_page(request, access, state, version, chosen=chosen, error=exc.message, status=400)
    where = ["the product default"] if product_default else []
    where += [f"group {g}" for g in groups]
    notice = f"Version {version} released to {', '.join(where)}." if where else f"Version {version} unreleased."
    return back(f"/console/products/{access.product.id}/firmware", notice)
