"""What a devices hub needs beside the list: a product's device counts, and its change stream.

    GET /v1/products/{product}/device_counts   members, online, quarantined, denied, members by firmware
    GET /v1/products/{product}/changes         "what changed" notices as Server-Sent Events

The change stream is read from the store, so it holds in cluster mode too: every status change of
a device in the product (admission at each connection, approve, pre-add, deny, remove), a device
edit, a rollout's step and an update's outcome write an audit entry, and the stream sends each as
`event: change` with the entry's ID (`Last-Event-ID` resumes after it); members that went offline
(no audit entry) come as notices without an ID. It polls once a second: two indexed reads.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import trio
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from ..logs import iso, now
from ..store import Store
from ..store.records import AuditRecord
from .deps import ApiState, ProductAccess, State, product_access, stream_access
from .models import DeviceCountsOut, FirmwareCountOut
from .permissions import Perm
from .routes_events import KEEPALIVE, SSE_DOC, EventStreamResponse, LastIdHeader, LastIdQuery, last_id

router = APIRouter(tags=["product devices"])

POLL = 1.0  # seconds between looks at the store
PAGE = 500  # audit entries per read while catching up

# Audit actions as the notices name them; any other action is sent under its own name.
_KINDS = {
    "approved": "approved",
    "preadded": "approved",
    "denied": "denied",
    "removed": "removed",
    "unlisted": "removed",
    "device_updated": "updated",
    "firmware_locked": "updated",
    "firmware_unlocked": "updated",
    "device_groups_set": "updated",
}


def _kind(entry: AuditRecord) -> str:
    if entry.action == "admission":  # a connection: the device is online, with this status
        return "quarantined" if entry.detail.get("status") == "quarantined" else "online"
    if entry.action.startswith("rollout_"):
        return "rollout"
    if entry.action.startswith("ota_"):
        return "ota"
    return _KINDS.get(entry.action, entry.action)


def change_notice(entry: AuditRecord, with_audit: bool) -> dict[str, Any]:
    """One audit entry as a notice. Who did it and why only for callers who may read the audit trail."""
    notice: dict[str, Any] = {"id": entry.id, "kind": _kind(entry), "device_id": entry.device_id, "at": iso(entry.at)}
    if entry.action == "admission":
        notice["status"] = entry.detail.get("status")
    rollout = entry.detail.get("rollout")
    if isinstance(rollout, int):  # which rollout a rollout's step (or a device's part in it) is about
        notice["rollout"] = rollout
    if with_audit:
        notice |= {"action": entry.action, "actor": entry.actor, "reason": entry.reason}
    return notice


def _sse(notice: dict[str, Any], event_id: int | None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: change\ndata: {json.dumps(notice, separators=(',', ':'))}\n\n".encode()


def _look(
    store: Store, product_id: int, after_id: int, offline_after: float
) -> tuple[list[AuditRecord], list[tuple[str, float]]]:
    return store.list_audit(product_id, None, after_id, PAGE), store.went_offline(product_id, offline_after)


async def _changes(
    state: ApiState, product_id: int, after_id: int | None, with_audit: bool
) -> AsyncGenerator[bytes, None]:
    yield b":ok\n\n"
    if after_id is None:  # start live: what happens from now on
        after_id = await state.ctx.store.read(state.store.latest_audit_id, product_id)
    offline_after = now()
    quiet_since = trio.current_time()
    while True:
        entries, offline = await state.ctx.store.read(_look, state.store, product_id, after_id, offline_after)
        blocks = [_sse(change_notice(e, with_audit), e.id) for e in entries]
        for device_id, at in offline:
            blocks.append(_sse({"kind": "offline", "device_id": device_id, "at": iso(at)}, None))
            offline_after = max(offline_after, at)
        if entries:
            after_id = entries[-1].id
        if blocks:
            yield b"".join(blocks)
            quiet_since = trio.current_time()
        elif trio.current_time() - quiet_since >= KEEPALIVE:
            yield b":ok\n\n"
            quiet_since = trio.current_time()
        if len(entries) < PAGE:
            await trio.sleep(POLL)


@router.get(
    "/v1/products/{product}/device_counts",
    response_model=DeviceCountsOut,
    summary="Members, online, quarantined and denied devices, and members by firmware version",
)
async def device_counts(
    access: Annotated[ProductAccess, Depends(product_access(Perm.DEVICES_READ))], state: State
) -> DeviceCountsOut:
    counts = await state.ctx.store.read(state.store.hub_counts, access.product.id)
    return DeviceCountsOut(
        members=counts.members,
        online=counts.online,
        quarantined=counts.quarantined,
        denied=counts.denied,
        firmware=[FirmwareCountOut(version=v, devices=n) for v, n in counts.by_firmware],
    )


@router.get(
    "/v1/products/{product}/changes",
    response_class=StreamingResponse,
    responses=SSE_DOC,
    summary="What changes in the product's devices and rollouts, as it happens (SSE)",
)
async def product_changes(
    access: Annotated[ProductAccess, Depends(stream_access(Perm.DEVICES_READ))],
    state: State,
    last_event_id: LastIdHeader = None,
    after: LastIdQuery = None,
) -> StreamingResponse:
    stream = _changes(state, access.product.id, last_id(last_event_id, after), access.allows(Perm.AUDIT_READ))
    return EventStreamResponse(stream)
