"""Event streams end to end: devices publish over TCP, SSE clients read Particle's wire shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from firmware_sim.device import DeviceSettings, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import Status

from ..api.conftest import PASSWORD, Api, start_api

P = 4801


@dataclass
class Stream:
    events: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    async def wait_open(self) -> None:
        """Until the opening `:ok`: the server subscribes before sending it."""
        with trio.fail_after(10):
            while not self.comments:
                await self.changed.wait()
                self.changed = trio.Event()

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(10):
            while len(self.events) < count:
                await self.changed.wait()
                self.changed = trio.Event()


async def read_stream(api: Api, path: str, stream: Stream, headers: dict[str, str] | None = None) -> None:
    """Parse an SSE response into `stream` until cancelled."""
    async with api.http.stream("GET", path, headers={**api.admin, **(headers or {})}, timeout=None) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        current: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                stream.comments.append(line)
                stream.changed.set()
            elif line == "":
                if current:
                    stream.events.append(
                        {"id": int(current["id"]), "event": current["event"], **json.loads(current["data"])}
                    )
                    current = {}
                    stream.changed.set()
            else:
                key, _, value = line.partition(": ")
                current[key] = value


@dataclass
class World:
    api: Api
    members: list[DeviceIdentity]
    stranger: DeviceIdentity  # reports the product but is not a member: quarantined


@pytest.fixture
async def world(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[World]:
    api = await start_api(tmp_path, nursery)
    identities = [DeviceIdentity.generate() for _ in range(3)]
    async with api.http:
        for identity in identities:
            body = {"public_key": identity.key.public.hex()}
            await api.ok("POST", f"/v1/provisioning/{identity.device_id_hex}", json=body)
        await api.ok("POST", "/v1/products", json={"name": "Lamp", "id": P})
        for identity in identities[:2]:
            await api.ok("POST", f"/v1/products/{P}/devices", json={"id": identity.device_id_hex})
        yield World(api, identities[:2], identities[2])
    api.server.shutdown()


async def publish(world: World, identity: DeviceIdentity, names: list[str], status: Status) -> None:
    server = world.api.server
    stream = await trio.open_tcp_stream("127.0.0.1", server.device_port)
    settings = DeviceSettings(product_id=P)
    async with connect_device(stream, identity, server.ctx.server_key.public, settings) as device:
        assert device.state.status is status
        for name in names:
            await device.publish(name, f"{name}-data".encode())


async def test_only_privileged_devices_reach_the_product_stream(world: World) -> None:
    product, own = Stream(), Stream()
    stranger = world.stranger.device_id_hex
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, world.api, f"/v1/products/{P}/events", product)
        nursery.start_soon(read_stream, world.api, f"/v1/devices/{stranger}/events", own)
        await product.wait_open()
        await own.wait_open()
        await publish(world, world.stranger, ["temp"], Status.QUARANTINED)
        await publish(world, world.members[0], ["temp", "humidity"], Status.OK)
        await product.wait_for(2)
        await own.wait_for(1)
        nursery.cancel_scope.cancel()
    assert product.comments[0] == ":ok"
    assert [(e["event"], e["coreid"]) for e in product.events] == [
        ("temp", world.members[0].device_id_hex),
        ("humidity", world.members[0].device_id_hex),
    ]
    first = product.events[0]
    assert first["data"] == "temp-data" and first["ttl"] == 60 and first["productID"] == P
    assert first["published_at"].endswith("Z") and first["public"] is False
    # The quarantined device's events are its own: in its device stream, never the product's.
    assert [(e["event"], e["coreid"]) for e in own.events] == [("temp", stranger)]


async def test_last_event_id_resumes_from_the_store_and_prefixes_filter(world: World) -> None:
    await publish(world, world.members[0], ["temp", "status/boot", "temp", "status/ok"], Status.OK)
    everything, resumed, prefixed = Stream(), Stream(), Stream()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, world.api, f"/v1/products/{P}/events?after=0", everything)
        await everything.wait_for(4)
        second = everything.events[1]["id"]
        nursery.start_soon(read_stream, world.api, f"/v1/products/{P}/events", resumed, {"Last-Event-ID": str(second)})
        nursery.start_soon(read_stream, world.api, f"/v1/products/{P}/events/status?after=0", prefixed)
        await resumed.wait_open()
        await prefixed.wait_open()
        await resumed.wait_for(2)
        await prefixed.wait_for(2)
        # Live after the replay: a new event reaches every stream once.
        await publish(world, world.members[1], ["status/live"], Status.OK)
        await everything.wait_for(5)
        await resumed.wait_for(3)
        await prefixed.wait_for(3)
        nursery.cancel_scope.cancel()
    assert [e["event"] for e in everything.events] == ["temp", "status/boot", "temp", "status/ok", "status/live"]
    assert [e["event"] for e in resumed.events] == ["temp", "status/ok", "status/live"]
    assert [e["event"] for e in prefixed.events] == ["status/boot", "status/ok", "status/live"]
    ids = [e["id"] for e in everything.events]
    assert ids == sorted(ids) and len(set(ids)) == 5


async def test_stream_errors_are_4xx(world: World) -> None:
    api = world.api
    assert (await api.call("GET", "/v1/products/9999/events")).status_code == 404
    response = await api.call("GET", f"/v1/products/{P}/events", headers={"Last-Event-ID": "abc"})
    assert response.status_code == 400 and response.json()["field"] == "Last-Event-ID"
    assert (await api.call("GET", f"/v1/products/{P}/events/{'x' * 65}")).status_code == 400
    assert (await api.call("GET", f"/v1/devices/{'ab' * 12}/events")).status_code == 404
    unauthenticated = await api.http.get(f"/v1/products/{P}/events")
    assert unauthenticated.status_code == 401


async def test_a_device_denied_while_publishing_stops_reaching_the_product_stream(world: World) -> None:
    member = world.members[0]
    product, own = Stream(), Stream()
    server = world.api.server
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, world.api, f"/v1/products/{P}/events", product)
        nursery.start_soon(read_stream, world.api, f"/v1/devices/{member.device_id_hex}/events", own)
        await product.wait_open()
        await own.wait_open()
        stream = await trio.open_tcp_stream("127.0.0.1", server.device_port)
        async with connect_device(stream, member, server.ctx.server_key.public, DeviceSettings(product_id=P)) as dev:
            await dev.publish("before", b"1")
            await world.api.ok("DELETE", f"/v1/products/{P}/devices/{member.device_id_hex}", json={"deny": True})
            with trio.fail_after(5):
                await dev.wait_status(Status.DENIED)  # told at once, on the same connection
            await dev.publish("after", b"2")
        await own.wait_for(2)
        nursery.cancel_scope.cancel()
    assert [e["event"] for e in product.events] == ["before"]
    assert [e["event"] for e in own.events] == ["before", "after"]
    assert "productID" not in own.events[1]  # not routed to the product


async def test_an_event_published_through_the_api_reaches_the_product_stream(world: World) -> None:
    api, stream = world.api, Stream()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, api, f"/v1/products/{P}/events", stream)
        await stream.wait_open()
        body = {"name": "ops/notice", "data": "maintenance at 02:00", "private": False, "ttl": 120}
        assert await api.ok("POST", f"/v1/products/{P}/events", json=body) == {"ok": True}
        await stream.wait_for(1)
        nursery.cancel_scope.cancel()
    (event,) = stream.events
    assert (event["event"], event["coreid"], event["data"], event["ttl"]) == ("ops/notice", "api", body["data"], 120)
    assert event["public"] is True and event["productID"] == P
    for bad, field_name in [
        ({"name": ""}, "name"),
        ({"name": "é" * 40}, "name"),  # 80 bytes of UTF-8
        ({"name": "x", "data": "d" * 1025}, "data"),
        ({"name": "x", "ttl": -1}, "ttl"),
        ({"name": "x", "extra": 1}, "extra"),
    ]:
        response = await api.call("POST", f"/v1/products/{P}/events", json=bad)
        assert response.status_code == 400 and response.json()["field"] == field_name, (bad, response.text)


async def test_customers_stream_only_their_own_devices(world: World) -> None:
    api = world.api
    mine, other = world.members
    await api.ok("POST", f"/v1/products/{P}/customers", json={"username": "kim", "password": PASSWORD})
    await api.ok("PUT", f"/v1/products/{P}/devices/{mine.device_id_hex}/owner", json={"customer": "kim"})
    token = (await api.login("kim"))["access_token"]
    kim = {"Authorization": f"Bearer {token}"}
    everything, own = Stream(), Stream()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_stream, api, "/v1/devices/events", own, kim)
        nursery.start_soon(read_stream, api, "/v1/devices/events", everything)  # the admin: every device
        await own.wait_open()
        await everything.wait_open()
        await publish(world, other, ["temp"], Status.OK)
        await publish(world, mine, ["temp"], Status.OK)
        await everything.wait_for(2)
        await own.wait_for(1)
        nursery.cancel_scope.cancel()
    assert [e["coreid"] for e in own.events] == [mine.device_id_hex]
    assert [e["coreid"] for e in everything.events] == [other.device_id_hex, mine.device_id_hex]
    refused = await api.call("GET", f"/v1/devices/{other.device_id_hex}/events", token)
    assert refused.status_code == 404  # not hers: it does not exist, as far as she can tell
    assert (await api.call("GET", f"/v1/products/{P}/events", token)).status_code == 403


async def test_a_resumed_stream_over_several_devices_replays_every_one_of_them(world: World) -> None:
    api = world.api
    first, second = world.members
    await api.ok("POST", f"/v1/products/{P}/customers", json={"username": "kim", "password": PASSWORD})
    await publish(world, world.stranger, ["elsewhere"], Status.QUARANTINED)  # not hers: never replayed
    for device in (first, second):
        await api.ok("PUT", f"/v1/products/{P}/devices/{device.device_id_hex}/owner", json={"customer": "kim"})
        await publish(world, device, ["temp"], Status.OK)
    token = (await api.login("kim"))["access_token"]
    resumed = Stream()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            read_stream, api, "/v1/devices/events?after=0", resumed, {"Authorization": f"Bearer {token}"}
        )
        await resumed.wait_for(2)
        nursery.cancel_scope.cancel()
    assert sorted(e["coreid"] for e in resumed.events) == sorted([first.device_id_hex, second.device_id_hex])


async def test_a_stream_the_client_leaves_gives_up_its_subscription(world: World) -> None:
    """The server closes the stream's generator when the response ends, so nothing stays subscribed."""
    broker = world.api.server.ctx.events
    for _ in range(3):
        stream = Stream()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_stream, world.api, f"/v1/products/{P}/events", stream)
            await stream.wait_open()
            assert len(broker) == 1
            nursery.cancel_scope.cancel()  # the client goes away
        with trio.fail_after(5):
            while len(broker):  # noqa: ASYNC110 - the broker has no event for a subscription ending
                await trio.sleep(0.01)
