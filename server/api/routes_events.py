"""Event streams as Server-Sent Events, on Particle's paths and in Particle's wire shape.

    GET /v1/products/{product}/events[/{prefix}]   events routed to the product (product_events)
    GET /v1/devices/{device_id}/events[/{prefix}]  one device's own events (any status)
    GET /v1/products/{product}/devices/{device_id}/events[/{prefix}]  the device's events in the product's stream

Each event is `id: N`, `event: NAME`, `data: {"data", "ttl", "published_at", "coreid", ...}`.
A comment line `:ok` opens the stream and keeps it alive. `Last-Event-ID` (header or query)
replays from the store what came after it, then the stream goes live; a subscriber that falls
too far behind is cut off and resumes the same way.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from json.encoder import encode_basestring_ascii
from typing import Annotated, Any

import trio
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import Field, StrictBool, StrictInt, StrictStr

from protocol import limits

from ..events.feeds import API_SOURCE, CLOUD_SOURCE, USER_SOURCE, EventFilter, user_source
from ..logs import IsoClock, now
from ..ops.base import device_id_or_invalid
from ..rules.errors import Invalid, NotFound
from ..rules.model import Owner
from ..store import Store
from ..store.records import EventRecord
from .deps import ApiState, Principal, ProductAccess, State, product_access, stream_access, stream_with_scope
from .form_bodies import json_or_form, openapi_body
from .models import OkOut, Request
from .permissions import Perm
from .routes_devices import DeviceIdPath, device_in_product
from .views import team_products

router = APIRouter(tags=["events"])

KEEPALIVE = 15.0  # seconds between `:ok` comments on a quiet stream (proxies drop idle streams)
REPLAY_PAGE = 500  # stored events per read while catching up
# Live events queued for a stream go out together, as one chunk of at most this many: one ASGI
# send (one h11 event, one socket write) per wakeup instead of one per event, and a chunk
# small enough (~100 KiB, a few ms to format) to keep the event loop responsive.
CHUNK_EVENTS = 512
MAX_PREFIX = 64  # an event name is at most 64 characters

# The streams take the console's session cookie too (GET only; see deps.authenticate_stream).
Reader = Annotated[ProductAccess, Depends(stream_access(Perm.DEVICES_READ))]
StreamCaller = Annotated[Principal, Depends(stream_with_scope("devices:read"))]  # customers too: their own devices
LastIdHeader = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID", description="resume after this event ID", json_schema_extra={"pattern": r"^[0-9]{1,18}$"}
    ),
]
MAX_EVENT_ID = 10**18 - 1  # 18 digits, as Last-Event-ID takes: well inside SQLite's 64-bit integers
LastIdQuery = Annotated[
    int | None, Query(ge=0, le=MAX_EVENT_ID, description="resume after this event ID (as Last-Event-ID)")
]

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


_json_str = encode_basestring_ascii  # what json.dumps writes for a str (ensure_ascii, the default)
_iso = IsoClock()


def coreid_of(event: EventRecord) -> str:
    """Who published it, as Particle's `coreid` names it."""
    if event.to_device is not None:
        return CLOUD_SOURCE
    if event.device_id.startswith(USER_SOURCE):
        return API_SOURCE  # a user's own event: Particle shows "api"; the user stays private
    return event.device_id


def sse(event: EventRecord) -> bytes:
    """One event as an SSE block. The data line is what `json.dumps(body, separators=(",", ":"))`
    writes for {"data", "ttl", "published_at", "coreid", "public"[, "productID"]}, built
    directly: this runs once per event per stream."""
    coreid = coreid_of(event)
    data = _json_str(event.data.decode("utf-8", errors="replace"))
    public = "false" if event.private else "true"
    product = "" if event.product_id is None else f',"productID":{int(event.product_id)}'
    name = event.name.replace("\n", " ").replace("\r", " ")
    return (
        f'id: {event.id}\nevent: {name}\ndata: {{"data":{data},"ttl":{int(event.ttl)},'
        f'"published_at":"{_iso(event.published_at)}","coreid":{_json_str(coreid)},"public":{public}{product}}}\n\n'
    ).encode()


def last_id(header: str | None, query: int | None) -> int | None:
    if header is not None:
        text = header.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_EVENT_ID))):
            raise Invalid("Last-Event-ID must be an event ID (a whole number)", "Last-Event-ID")
        return int(text)
    return query


def _prefix(prefix: str) -> str:
    if len(prefix) > MAX_PREFIX:
        raise Invalid(f"an event name prefix is at most {MAX_PREFIX} characters", "prefix")
    return prefix


async def _stream(
    state: ApiState, event_filter: EventFilter, last_id: int | None, fmt: Callable[[EventRecord], bytes] = sse
) -> AsyncGenerator[bytes, None]:
    broker, store = state.ctx.events, state.ctx.store
    subscription = broker.subscribe(event_filter)  # first: nothing published during the replay is missed
    try:
        yield b":ok\n\n"
        seen = -1
        if last_id is not None:
            seen = last_id
            # One device: the store reads only its rows. Several (a caller's visible devices):
            # every stored event after `seen`, and the filter keeps theirs.
            ids = event_filter.device_ids
            device = next(iter(ids)) if ids is not None and len(ids) == 1 else None
            while True:
                page = await store.read(store.sync.list_events, device, seen, REPLAY_PAGE, event_filter.product_id)
                if page:
                    assert page[-1].id is not None
                    seen = page[-1].id
                    chunk = b"".join(fmt(event) for event in page if event_filter.matches(event))
                    if chunk:
                        yield chunk
                if len(page) < REPLAY_PAGE:
                    break
        while True:
            with trio.move_on_after(KEEPALIVE) as quiet:
                try:
                    events = await subscription.next_batch(CHUNK_EVENTS)
                except trio.EndOfChannel:
                    if subscription.cut_off:
                        yield b": cut off: this stream fell too far behind; reconnect with Last-Event-ID\n\n"
                    return
            if quiet.cancelled_caught:
                yield b":ok\n\n"
                continue
            blocks: list[bytes] = []
            for event in events:  # in publish order; what the replay already sent is skipped
                if event.id is not None and event.id > seen:
                    seen = event.id
                    blocks.append(fmt(event))
            if blocks:
                yield b"".join(blocks)
    finally:
        broker.unsubscribe(subscription)


class EventStreamResponse(StreamingResponse):
    """Closes its generator however the response ends (a client gone between two sends included),
    so the broker subscription ends then, not whenever the garbage collector finds the generator."""

    def __init__(self, stream: AsyncGenerator[bytes, None]) -> None:
        super().__init__(stream, media_type="text/event-stream", headers=_SSE_HEADERS)
        self._stream = stream

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with trio.CancelScope(shield=True):
                await self._stream.aclose()


def _response(
    state: ApiState, event_filter: EventFilter, last_id: int | None, fmt: Callable[[EventRecord], bytes] = sse
) -> StreamingResponse:
    """A stream of `event_filter`'s events (replayed after `last_id`, then live), each written by `fmt`:
    Particle's blocks here; the console's log takes them as JSON messages (console/routes_events.py)."""
    return EventStreamResponse(_stream(state, event_filter, last_id, fmt))


event_stream_response = _response


SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "a stream of Server-Sent Events"}
}


class EventIn(Request):
    name: Annotated[StrictStr, Field(min_length=1, max_length=limits.MAX_EVENT_NAME)]
    data: Annotated[StrictStr, Field(max_length=limits.MAX_EVENT_DATA)] = ""
    private: StrictBool = True
    ttl: Annotated[StrictInt, Field(ge=0, le=limits.MAX_EVENT_TTL)] = 60


async def publish_as(state: ApiState, body: EventIn, source: str, product_id: int | None) -> None:
    """Store an API-published event and hand it to the streams. Only an event routed to a
    product (product_id) triggers that product's webhooks and reaches its devices."""
    name, data = body.name, body.data.encode()
    if len(name.encode()) > limits.MAX_EVENT_NAME:
        raise Invalid(f"an event name is at most {limits.MAX_EVENT_NAME} bytes of UTF-8", "name")
    if len(data) > limits.MAX_EVENT_DATA:
        raise Invalid(f"event data is at most {limits.MAX_EVENT_DATA} bytes of UTF-8", "data")
    record = EventRecord(
        source, name, data, body.ttl, body.private, now(), product_id=product_id, webhooks=product_id is not None
    )
    await state.ctx.event_log.append_and_wait(record)  # stored, then published


@router.post("/v1/products/{product}/events", response_model=OkOut, summary="Publish an event to the product's stream",
             openapi_extra=openapi_body(EventIn))  # fmt: skip
async def publish_event(
    access: Annotated[ProductAccess, Depends(product_access(Perm.EVENTS_PUBLISH))],
    body: Annotated[EventIn, Depends(json_or_form(EventIn))],
    state: State,
) -> OkOut:
    await publish_as(state, body, API_SOURCE, access.product.id)
    return OkOut()


@router.get("/v1/products/{product}/events", response_class=StreamingResponse, responses=SSE_DOC,
            summary="The product's event stream (SSE)")  # fmt: skip
async def product_events(
    access: Reader, state: State, last_event_id: LastIdHeader = None, after: LastIdQuery = None
) -> StreamingResponse:
    return _response(state, EventFilter(product_id=access.product.id), last_id(last_event_id, after))


@router.get("/v1/products/{product}/events/{prefix:path}", response_class=StreamingResponse, responses=SSE_DOC,
            summary="The product's events whose name starts with prefix (SSE)")  # fmt: skip
async def product_events_prefix(
    prefix: str, access: Reader, state: State, last_event_id: LastIdHeader = None, after: LastIdQuery = None
) -> StreamingResponse:
    event_filter = EventFilter(product_id=access.product.id, prefix=_prefix(prefix))
    return _response(state, event_filter, last_id(last_event_id, after))


def visible_device_ids(store: Store, caller: Principal) -> frozenset[str] | None:
    """The devices whose own events the caller may stream (None: every device, for admins).
    Users: their products' devices and devices they own; customers: devices they own."""
    if caller.is_admin:
        return None
    if caller.customer is not None:
        owner = Owner("customer", caller.customer.id)
        return frozenset(d.device_id for d in store.list_devices() if d.owner == owner)
    assert caller.user is not None
    mine = team_products(store, caller.user.id)
    owner = Owner("user", caller.user.id)
    visible = {d.device_id for d in store.list_devices() if d.product_id in mine or d.owner == owner}
    visible.add(user_source(caller.user.id))  # the events the user published (POST /v1/devices/events)
    return frozenset(visible)


async def _device_filter(state: ApiState, caller: Principal, device_text: str, prefix: str) -> EventFilter:
    device_id = device_id_or_invalid(device_text)
    visible = await state.ctx.store.read(visible_device_ids, state.store, caller)
    known = (
        device_id in visible if visible is not None else await state.ctx.store.read(state.store.get_device, device_id)
    )
    if not known:
        raise NotFound(f"device {device_id} not found")
    return EventFilter(device_ids=frozenset({device_id}), prefix=_prefix(prefix))


async def _all_devices_filter(state: ApiState, caller: Principal, prefix: str) -> EventFilter:
    visible = await state.ctx.store.read(visible_device_ids, state.store, caller)
    return EventFilter(device_ids=visible, prefix=_prefix(prefix))


# Before /v1/devices/{device_id}/...: "events" is not a device ID.
@router.get("/v1/devices/events", response_class=StreamingResponse, responses=SSE_DOC,
            summary="Events of every device the caller may see (SSE)")  # fmt: skip
async def all_device_events(
    caller: StreamCaller, state: State, last_event_id: LastIdHeader = None, after: LastIdQuery = None
) -> StreamingResponse:
    return _response(state, await _all_devices_filter(state, caller, ""), last_id(last_event_id, after))


@router.get("/v1/devices/events/{prefix:path}", response_class=StreamingResponse, responses=SSE_DOC,
            summary="Events of every device the caller may see, by name prefix (SSE)")  # fmt: skip
async def all_device_events_prefix(
    prefix: str, caller: StreamCaller, state: State, last_event_id: LastIdHeader = None, after: LastIdQuery = None
) -> StreamingResponse:
    return _response(state, await _all_devices_filter(state, caller, prefix), last_id(last_event_id, after))


@router.get("/v1/devices/{device_id}/events", response_class=StreamingResponse, responses=SSE_DOC,
            summary="One device's own events (SSE)")  # fmt: skip
async def device_events(
    device_id: DeviceIdPath, caller: StreamCaller, state: State, last_event_id: LastIdHeader = None,
    after: LastIdQuery = None,
) -> StreamingResponse:  # fmt: skip
    event_filter = await _device_filter(state, caller, device_id, "")
    return _response(state, event_filter, last_id(last_event_id, after))


@router.get("/v1/devices/{device_id}/events/{prefix:path}", response_class=StreamingResponse, responses=SSE_DOC,
            summary="One device's own events whose name starts with prefix (SSE)")  # fmt: skip
async def device_events_prefix(
    device_id: DeviceIdPath, prefix: str, caller: StreamCaller, state: State, last_event_id: LastIdHeader = None,
    after: LastIdQuery = None,
) -> StreamingResponse:  # fmt: skip
    event_filter = await _device_filter(state, caller, device_id, prefix)
    return _response(state, event_filter, last_id(last_event_id, after))


# ---------------------------------------------------------------- one device in a product's stream


async def _product_device_filter(state: ApiState, access: ProductAccess, device_text: str, prefix: str) -> EventFilter:
    device_id = device_id_or_invalid(device_text)
    await device_in_product(state, access.product.id, device_id)  # 404 unless the product lists it
    # What the device published into this product's stream (as its privileges allowed then).
    return EventFilter(product_id=access.product.id, device_ids=frozenset({device_id}), prefix=_prefix(prefix))


@router.get("/v1/products/{product}/devices/{device_id}/events", response_class=StreamingResponse,
            responses=SSE_DOC, summary="One device's events in the product's stream (SSE)")  # fmt: skip
async def product_device_events(
    device_id: DeviceIdPath, access: Reader, state: State, last_event_id: LastIdHeader = None,
    after: LastIdQuery = None,
) -> StreamingResponse:  # fmt: skip
    event_filter = await _product_device_filter(state, access, device_id, "")
    return _response(state, event_filter, last_id(last_event_id, after))


@router.get("/v1/products/{product}/devices/{device_id}/events/{prefix:path}", response_class=StreamingResponse,
            responses=SSE_DOC, summary="One device's events in the product's stream, by prefix (SSE)")  # fmt: skip
async def product_device_events_prefix(
    device_id: DeviceIdPath, prefix: str, access: Reader, state: State, last_event_id: LastIdHeader = None,
    after: LastIdQuery = None,
) -> StreamingResponse:  # fmt: skip
    event_filter = await _product_device_filter(state, access, device_id, prefix)
    return _response(state, event_filter, last_id(last_event_id, after))
