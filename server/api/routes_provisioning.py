"""Device keys (server admins): one device, or many from JSON or a CSV file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from protocol.messages import parse_public_key

from ..ops.base import device_id_or_invalid
from ..rules.errors import Conflict, Invalid
from .bodies import is_multipart, json_body, key_rows, multipart_or_json, upload_text
from .deps import Principal, State, user_with_scope
from .models import ProvisionBatchIn, ProvisionBatchOut, ProvisionError, ProvisionIn, ProvisionOut, ProvisionRow
from .routes_devices import DeviceIdPath

router = APIRouter(tags=["provisioning"])

Provisioner = Annotated[Principal, Depends(user_with_scope("provisioning:write", admin=True))]


@router.post(
    "/v1/provisioning/{device_id}",
    response_model=ProvisionOut,
    status_code=201,
    summary="Register one device's public key",
)
async def provision_one(device_id: DeviceIdPath, body: ProvisionIn, caller: Provisioner, state: State) -> ProvisionOut:
    device_id = device_id_or_invalid(device_id)
    try:
        parse_public_key(body.public_key)
    except ValueError as exc:
        raise Invalid(str(exc), "public_key") from None
    _, errors = await state.ops.provision(caller.actor, [(device_id, body.public_key)])
    if errors:
        raise Conflict(f"device {device_id}: {errors[0][1]}", "public_key")
    return ProvisionOut(id=device_id)


_BATCH_SCHEMA = {
    "type": "object",
    "properties": {"devices": {"type": "array", "maxItems": 10_000, "items": ProvisionRow.model_json_schema()}},
    "required": ["devices"],
}


@router.post(
    "/v1/provisioning",
    response_model=ProvisionBatchOut,
    summary="Register many devices' public keys",
    openapi_extra=multipart_or_json(
        _BATCH_SCHEMA, "JSON {devices: [{id, public_key}]}, or a multipart `file`: CSV device_id,public_key"
    ),
)
async def provision_many(request: Request, caller: Provisioner, state: State) -> ProvisionBatchOut:
    bad: list[tuple[str, str]] = []
    if is_multipart(request):
        rows, bad = key_rows(await upload_text(request))
    else:
        body = await json_body(request, ProvisionBatchIn)
        rows = [(d.id, d.public_key) for d in body.devices]
    registered, errors = await state.ops.provision(caller.actor, rows)
    return ProvisionBatchOut(
        registered=registered,
        errors=[ProvisionError(id=ident[:64], error=message) for ident, message in bad + errors],
    )
