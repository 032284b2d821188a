"""A product stream's stored events as JSON pages: what a log view shows before (and beside)
the live stream, filtered by device and name prefix, paged back with `before`."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ..ops.base import device_id_or_invalid
from ..rules.errors import Invalid
from ..store.records import EventRecord
from .deps import ProductAccess, State, product_access
from .permissions import Perm
from .routes_events import MAX_EVENT_ID, MAX_PREFIX, coreid_of
from .views import iso

router = APIRouter(tags=["events"])


class StoredEventOut(BaseModel):
    id: int
    event: str = Field(description="the event's name")
    data: str
    ttl: int
    published_at: str
    coreid: str = Field(description="the publishing device's ID, or `api` / `particle-internal`")
    public: bool


class EventHistoryOut(BaseModel):
    events: list[StoredEventOut] = Field(description="oldest first")


def stored_event_out(event: EventRecord) -> StoredEventOut:
    assert event.id is not None
    return StoredEventOut(
        id=event.id, event=event.name, data=event.data.decode("utf-8", errors="replace"), ttl=event.ttl,
        published_at=iso(event.published_at), coreid=coreid_of(event), public=not event.private,
    )  # fmt: skip


def sse_message(event: EventRecord) -> bytes:
    """One event as an unnamed SSE message whose data is its JSON (StoredEventOut): a browser's
    EventSource hears every one on `message`, where Particle's blocks are named by the event."""
    return f"id: {event.id}\ndata: {stored_event_out(event).model_dump_json()}\n\n".encode()


@router.get("/v1/products/{product}/event_history", response_model=EventHistoryOut,
            summary="The product stream's stored events (JSON pages)")  # fmt: skip
async def event_history(
    access: Annotated[ProductAccess, Depends(product_access(Perm.DEVICES_READ))],
    state: State,
    device_id: Annotated[str | None, Query(max_length=64, description="only this device's events")] = None,
    prefix: Annotated[str | None, Query(max_length=MAX_PREFIX, description="only names starting with it")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID, description="events with a larger id")] = 0,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_EVENT_ID, description="the `limit` events just before this id (paging back)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventHistoryOut:
    try:
        device = None if device_id is None else device_id_or_invalid(device_id)
    except Invalid as exc:
        raise Invalid(exc.message, "device_id") from None
    read = partial(
        state.store.event_history, access.product.id, device_id=device, prefix=prefix or None,
        after_id=after, before_id=before, limit=limit,
    )  # fmt: skip
    events = await state.ctx.store.read(read)
    return EventHistoryOut(events=[stored_event_out(e) for e in events])
