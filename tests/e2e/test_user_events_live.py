"""Events Particle's clients publish and follow: a user's own events (POST /v1/devices/events,
`particle publish`) and one device's events in a product's stream; over a real server, with
simulated devices speaking the real protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from firmware_sim.identity import DeviceIdentity
from protocol.codes import Status

from ..api.conftest import Api, bearer, start_api
from .test_events_live import P, Stream, World, publish, read_stream


@pytest.fixture
async def world(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[World]:
    api = await start_api(tmp_path, nursery, webhook_allow_private=True)
    identities = [DeviceIdentity.generate() for _ in range(2)]
    async with api.http:
        for identity in identities:
            await api.provision(identity)
        await api.ok("POST", "/v1/products", json={"name": "Lamp", "id": P})
        await api.ok("POST", f"/v1/products/{P}/devices", json={"id": identities[0].device_id_hex})
        yield World(api, identities[:1], identities[1])
    api.server.shutdown()


async def _user_streams(api: Api, alice: str, bob: str, publish_body: dict[str, str]) -> tuple[Stream, ...]:
    mine, bobs, admins, product = Stream(), Stream(), Stream(), Stream()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, api, "/v1/devices/events", mine, bearer(alice))
        nursery.start_soon(read_stream, api, "/v1/devices/events", bobs, bearer(bob))
        nursery.start_soon(read_stream, api, "/v1/devices/events", admins)
        nursery.start_soon(read_stream, api, f"/v1/products/{P}/events", product)
        for stream in (mine, bobs, admins, product):
            await stream.wait_open()
        # particle-cli publishes with a form (`private` as text).
        assert await api.ok("POST", "/v1/devices/events", alice, data=publish_body) == {"ok": True}
        await mine.wait_for(1)
        await admins.wait_for(1)
        # A marker on the product stream: whatever alice's event did there came before it.
        await api.ok("POST", f"/v1/products/{P}/events", json={"name": "marker"})
        await product.wait_for(1)
        await mine.wait_for(1)
        nursery.cancel_scope.cancel()
    return mine, bobs, admins, product


async def test_a_user_event_reaches_the_users_own_stream_and_nothing_else(world: World) -> None:
    api = world.api
    alice, bob = await api.user("alice"), await api.user("bob")
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "alice", "role": "developer"})
    hook = {"event": "door", "url": "http://127.0.0.1:9/in"}
    created = await api.ok("POST", f"/v1/products/{P}/webhooks", json=hook)

    body = {"name": "door/open", "data": "front", "private": "true"}
    mine, bobs, admins, product = await _user_streams(api, alice, bob, body)

    (event,) = mine.events
    assert (event["event"], event["data"], event["coreid"], event["public"]) == ("door/open", "front", "api", False)
    assert "productID" not in event
    assert admins.events[0]["event"] == "door/open"  # admins see every stream
    assert bobs.events == []  # another user's own event is not bob's
    assert [e["event"] for e in product.events] == ["marker"]  # no product: not in a product stream
    deliveries = await api.ok("GET", f"/v1/products/{P}/webhooks/{created['id']}/deliveries")
    assert deliveries["counters"]["triggered"] == 0  # and no product's webhook fires

    # Replayed from the store for the same user only.
    replay = Stream()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, api, "/v1/devices/events?after=0", replay, bearer(alice))
        await replay.wait_for(1)
        nursery.cancel_scope.cancel()
    assert [e["event"] for e in replay.events] == ["door/open"]


async def test_publishing_as_a_user_is_checked(world: World) -> None:
    api = world.api
    reader = await api.user("reader", scope="devices:read")
    refused = await api.call("POST", "/v1/devices/events", reader, json={"name": "x"})
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    bad = await api.call("POST", "/v1/devices/events", json={"name": "x", "data": "d" * 1025})
    assert bad.status_code == 400 and bad.json()["field"] == "data"
    bad_private = await api.call("POST", "/v1/devices/events", data={"name": "x", "private": "perhaps"})
    assert bad_private.status_code == 400 and bad_private.json()["field"] == "private"
    unauthenticated = await api.http.post("/v1/devices/events", json={"name": "x"})
    assert unauthenticated.status_code == 401


async def test_one_devices_events_in_the_products_stream(world: World) -> None:
    api, member, stranger = world.api, world.members[0], world.stranger
    await api.user("viewer")
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "viewer"})  # view_only
    stream = Stream()
    path = f"/v1/products/{P}/devices/{member.device_id_hex}/events"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, api, path, stream, bearer(api.tokens["viewer"]))
        await stream.wait_open()
        await publish(world, stranger, ["temp"], Status.QUARANTINED)  # another device
        await api.ok("POST", f"/v1/products/{P}/events", json={"name": "temp"})  # not this device
        await publish(world, member, ["temp", "status"], Status.OK)
        await stream.wait_for(2)
        nursery.cancel_scope.cancel()
    assert [(e["event"], e["coreid"], e["productID"]) for e in stream.events] == [
        ("temp", member.device_id_hex, P),
        ("status", member.device_id_hex, P),
    ]
    prefixed = Stream()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, api, f"{path}/stat?after=0", prefixed)
        await prefixed.wait_for(1)
        nursery.cancel_scope.cancel()
    assert [e["event"] for e in prefixed.events] == ["status"]
    # The stranger reported the product: it is on the quarantine list, but its events never
    # reached the product's stream. A device the product does not list: 404.
    unknown = await api.call("GET", f"/v1/products/{P}/devices/{'ab' * 12}/events")
    assert unknown.status_code == 404
    outsider = await api.user("outsider")
    refused = await api.call("GET", path, outsider)
    assert refused.status_code == 403
