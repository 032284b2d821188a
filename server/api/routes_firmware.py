"""Product firmware (Particle's paths): upload, list, show, download, delete, release."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from .deps import ProductAccess, State, product_access
from .firmware_form import read_upload
from .form_bodies import json_or_form, openapi_body
from .models import OkOut
from .models_firmware import FirmwareInfoIn, FirmwareOut, FirmwareReleaseIn, ImpactedDeviceOut, ReleasePreviewOut
from .permissions import Perm
from .views_firmware import firmware_out

router = APIRouter(tags=["firmware"])

Reader = Annotated[ProductAccess, Depends(product_access(Perm.FIRMWARE_READ))]
VersionPath = Annotated[int, Path(ge=1, le=65535, description="firmware version")]

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "binary": {"type": "string", "format": "binary", "description": "the firmware binary"},
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "the binary, as particle-api-js names it (instead of `binary`)",
                        },
                        "version": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "title": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"},
                        "description": {"type": "string", "maxLength": 4096},
                        "signature": {
                            "type": "string",
                            "description": "detached Ed25519 signature: 128 hex characters, or a file of them"
                            " (or of the 64 raw bytes)",
                            "pattern": "^[0-9a-fA-F]{128}$",
                        },
                    },
                    "required": ["binary", "version", "title"],
                    "additionalProperties": False,  # read_upload refuses other fields
                }
            }
        },
    }
}


@router.get("/v1/products/{product}/firmware", response_model=list[FirmwareOut], summary="The product's firmware")
async def list_firmware(access: Reader, state: State) -> list[FirmwareOut]:
    records = await state.ctx.store.read(state.store.list_firmware, access.product.id)
    return [firmware_out(r) for r in records]


@router.post(
    "/v1/products/{product}/firmware",
    response_model=FirmwareOut,
    status_code=201,
    summary="Upload a firmware version (multipart)",
    openapi_extra=_UPLOAD_BODY,
)
async def upload_firmware(
    request: Request,
    access: Annotated[ProductAccess, Depends(product_access(Perm.FIRMWARE_UPLOAD))],
    state: State,
) -> FirmwareOut:
    upload = await read_upload(request, state.ctx.config.max_firmware_size)
    record = await state.ops.firmware.upload(
        access.actor,
        access.product.id,
        upload.data,
        version=upload.version,
        title=upload.title,
        description=upload.description,
        name=upload.file_name,
        signature=upload.signature,
    )
    return firmware_out(record)


# Before /firmware/{version}: "release" is not a version.
@router.put("/v1/products/{product}/firmware/release", response_model=FirmwareOut, summary="Release a version")
async def release_firmware(
    body: FirmwareReleaseIn,
    access: Annotated[ProductAccess, Depends(product_access(Perm.FIRMWARE_RELEASE))],
    state: State,
) -> FirmwareOut:
    record = await state.ops.firmware.release(
        access.actor,
        access.product.id,
        body.version,
        product_default=body.product_default,
        groups=body.groups,
        intelligent=body.intelligent,
    )
    return firmware_out(record)


@router.post(
    "/v1/products/{product}/firmware/release/preview",
    response_model=ReleasePreviewOut,
    summary="The devices a release would update (nothing is released)",
)
async def preview_release(
    body: FirmwareReleaseIn,
    access: Reader,
    state: State,
    sample: Annotated[int, Query(ge=0, le=1000, description="how many device IDs to list")] = 20,
) -> ReleasePreviewOut:
    impacted = await state.ops.firmware.release_preview(
        access.product.id, body.version, product_default=body.product_default, groups=body.groups
    )
    return ReleasePreviewOut(
        devices=len(impacted), sample=[ImpactedDeviceOut(id=d, version=v) for d, v in impacted[:sample]]
    )


@router.get("/v1/products/{product}/firmware/{version}", response_model=FirmwareOut, summary="One version")
async def get_firmware(version: VersionPath, access: Reader, state: State) -> FirmwareOut:
    return firmware_out(await state.ops.firmware.get(access.product.id, version))


@router.put(
    "/v1/products/{product}/firmware/{version}",
    response_model=FirmwareOut,
    summary="Change a version's title or description",
    openapi_extra=openapi_body(FirmwareInfoIn),
)
async def edit_firmware(
    version: VersionPath,
    # Editing what a version is called is part of managing uploads: the uploader's permission.
    access: Annotated[ProductAccess, Depends(product_access(Perm.FIRMWARE_UPLOAD))],
    body: Annotated[FirmwareInfoIn, Depends(json_or_form(FirmwareInfoIn))],
    state: State,
) -> FirmwareOut:
    record = await state.ops.firmware.update_info(
        access.actor, access.product.id, version, title=body.title, description=body.description
    )
    return firmware_out(record)


@router.get(
    "/v1/products/{product}/firmware/{version}/binary",
    response_class=Response,
    summary="Download a version's binary",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_firmware(version: VersionPath, access: Reader, state: State) -> Response:
    record, image = await state.ops.firmware.binary(access.product.id, version)  # checked against its SHA-256
    name = f"firmware-{record.product_id}-v{record.version}.bin"
    return Response(
        image,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Firmware-SHA256": record.sha256},
    )


@router.delete("/v1/products/{product}/firmware/{version}", response_model=OkOut, summary="Delete a version")
async def delete_firmware(
    version: VersionPath,
    access: Annotated[ProductAccess, Depends(product_access(Perm.FIRMWARE_UPLOAD))],
    state: State,
) -> OkOut:
    await state.ops.firmware.delete(access.actor, access.product.id, version)
    return OkOut()
