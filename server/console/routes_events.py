"""The console's event log: the product stream's stored events (newest first, "load earlier"
pages back), then live over an EventSource of the same filters. Device-published text reaches
the page autoescaped, and the script sets it with textContent only."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from ..api.deps import ProductAccess, State
from ..api.permissions import Perm
from ..api.routes_event_history import EventHistoryOut, sse_message, stored_event_out
from ..api.routes_events import MAX_EVENT_ID, MAX_PREFIX, event_stream_response
from ..events.feeds import EventFilter
from ..ops.base import device_id_or_invalid
from ..rules.errors import Invalid
from .access import product_page
from .render import page

router = APIRouter(prefix="/console/products/{product}", include_in_schema=False)

Reader = Annotated[ProductAccess, Depends(product_page(Perm.DEVICES_READ))]
DeviceQuery = Annotated[str, Query(max_length=64)]
PrefixQuery = Annotated[str, Query(max_length=MAX_PREFIX)]
PAGE = 50


def _device(text: str) -> str | None:
    try:
        return device_id_or_invalid(text) if text.strip() else None
    except Invalid as exc:
        raise Invalid(exc.message, "device_id") from None


async def _history(state: State, product_id: int, device: str | None, prefix: str, before: int) -> EventHistoryOut:
    read = partial(
        state.store.event_history, product_id, device_id=device, prefix=prefix or None, before_id=before, limit=PAGE
    )
    events = await state.ctx.store.read(read)
    return EventHistoryOut(events=[stored_event_out(e) for e in events])


@router.get("/events")
async def events(
    request: Request, access: Reader, state: State, device_id: DeviceQuery = "", prefix: PrefixQuery = "",
    before: Annotated[int, Query(ge=1, le=MAX_EVENT_ID)] = MAX_EVENT_ID,
) -> Response:  # fmt: skip
    device = _device(device_id)
    history = (await _history(state, access.product.id, device, prefix, before)).events
    newest: int | None = None
    if before == MAX_EVENT_ID:  # live from here: after the newest event shown, else the stream's newest
        if history:
            newest = history[-1].id
        else:
            read = partial(state.store.event_history, access.product.id, before_id=MAX_EVENT_ID, limit=1)
            latest = await state.ctx.store.read(read)
            newest = latest[-1].id if latest and latest[-1].id is not None else 0
    return page(request, "events.html", access.principal, access, tab="events", events=history[::-1],
                device_id=device or "", prefix=prefix, paged=before != MAX_EVENT_ID, newest=newest,
                full=len(history) == PAGE)  # fmt: skip


@router.get("/events/history", response_model=EventHistoryOut)
async def history(
    access: Reader, state: State, device_id: DeviceQuery = "", prefix: PrefixQuery = "",
    before: Annotated[int, Query(ge=1, le=MAX_EVENT_ID)] = MAX_EVENT_ID,
) -> EventHistoryOut:  # fmt: skip
    """JSON for the log's "load earlier" (the cookie's route: the JSON API takes bearer tokens only)."""
    return await _history(state, access.product.id, _device(device_id), prefix, before)


@router.get("/events/stream")
async def stream(
    access: Reader, state: State, device_id: DeviceQuery = "", prefix: PrefixQuery = "",
    after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=18)] = None,
) -> Response:  # fmt: skip
    """The product stream with the log's filters, as JSON messages; an EventSource's reconnect
    (Last-Event-ID) resumes from the store like the API's streams."""
    device = _device(device_id)
    resume = after
    if last_event_id is not None and last_event_id.strip().isdigit():
        resume = int(last_event_id.strip())
    event_filter = EventFilter(
        product_id=access.product.id, device_ids=None if device is None else frozenset({device}), prefix=prefix
    )
    return event_stream_response(state, event_filter, resume, sse_message)
