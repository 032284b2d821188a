"""Webhooks end to end: devices publish over TCP, a real HTTP receiver on loopback gets signed
requests, retries follow failures, and the answer comes back as the device's own events."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from firmware_sim.device import DeviceSettings, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import AckResult, Status, SubscribeResult
from server.store.records import EventRecord
from server.webhooks.request import EVENT_ID_HEADER, SIGNATURE_HEADER

from ...api.conftest import Api, start_api
from .receiver import Answer, Receiver, receiving

P = 4901
RETRIES = (0.3, 1.2)  # Particle's shape (a short wait, then a longer one), at test speed
# The last delay repeats while the next try falls this soon after the delivery was made: tries at about 0, 0.3
# and 1.5 s, a fourth would be at 2.7 s. The limit sits mid-way, so a loaded machine's late tries (CI) keep 3.
RETRY_FOR = 2.1


@dataclass
class World:
    api: Api
    members: list[DeviceIdentity]
    stranger: DeviceIdentity  # reports the product but is not a member: quarantined


async def make_world(api: Api) -> World:
    identities = [DeviceIdentity.generate() for _ in range(3)]
    for identity in identities:
        await api.ok(
            "POST", f"/v1/provisioning/{identity.device_id_hex}", json={"public_key": identity.key.public.hex()}
        )
    await api.ok("POST", "/v1/products", json={"name": "Meter", "id": P})
    for identity in identities[:2]:
        await api.ok("POST", f"/v1/products/{P}/devices", json={"id": identity.device_id_hex})
    return World(api, identities[:2], identities[2])


@pytest.fixture
async def world(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[World]:
    api = await start_api(tmp_path, nursery, webhook_retry_delays=RETRIES, webhook_retry_for=RETRY_FOR,
                          webhook_allow_private=True)  # fmt: skip
    async with api.http:
        yield await make_world(api)
    api.server.shutdown()


async def publish(world: World, identity: DeviceIdentity, names: list[str], status: Status = Status.OK) -> None:
    server = world.api.server
    stream = await trio.open_tcp_stream("127.0.0.1", server.device_port)
    async with connect_device(stream, identity, server.ctx.server_key.public, DeviceSettings(product_id=P)) as device:
        assert device.state.status is status
        for name in names:
            await device.publish(name, b'{"temp": 21.5}')


async def create(world: World, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    body = {"event": "temp", "url": receiver.url + "/in/{{PARTICLE_DEVICE_ID}}", **fields}
    created: dict[str, Any] = await world.api.ok("POST", f"/v1/products/{P}/webhooks", json=body)
    return created


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in headers[SIGNATURE_HEADER.lower()].split(","))
    message = f"{parts['t']}.{headers[EVENT_ID_HEADER.lower()]}.".encode() + body
    return hmac.compare_digest(hmac.new(bytes.fromhex(secret), message, hashlib.sha256).hexdigest(), parts["v1"])


async def device_events(world: World, device: str, prefix: str, count: int) -> list[EventRecord]:
    store = world.api.server.ctx.store.sync
    with trio.fail_after(10):
        while True:
            found = [e for e in store.list_events(device) if e.name.startswith(prefix)]
            if len(found) >= count:
                return found
            await trio.sleep(0.05)


async def test_signed_request_with_retries_after_500_and_the_answer_goes_back(world: World) -> None:
    member = world.members[0].device_id_hex
    async with receiving() as receiver:
        receiver.script = [Answer(500, b"down"), Answer(503, b"still down"), Answer(200, b"x" * 700)]
        hook = await create(world, receiver, json={"reading": "{{temp}}", "who": "{{PARTICLE_DEVICE_ID}}"})
        await publish(world, world.members[0], ["temp/room"])
        await receiver.wait_for(3)
    first, second, third = receiver.requests
    assert first.path == f"/in/{member}" and first.method == "POST"
    assert first.body == second.body == third.body
    body = json.loads(first.body)
    assert body["reading"] == "21.5" and body["who"] == member and body["event"] == "temp/room"
    assert all(verified(hook["secret"], r.headers, r.body) for r in receiver.requests)
    assert len({r.headers[EVENT_ID_HEADER.lower()] for r in receiver.requests}) == 1  # one idempotency key
    assert second.at - first.at >= RETRIES[0] * 0.9 and third.at - second.at >= RETRIES[1] * 0.9
    # 700 bytes come back as two chunks of at most 512, addressed to the device alone.
    chunks = await device_events(world, member, "hook-response/temp/room/", 2)
    assert [(e.name, len(e.data), e.to_device) for e in chunks] == [
        ("hook-response/temp/room/0", 512, member),
        ("hook-response/temp/room/1", 188, member),
    ]
    history = await world.api.ok("GET", f"/v1/products/{P}/webhooks/{hook['id']}/deliveries")
    assert history["counters"] | {} == {"triggered": 1, "sent": 3, "succeeded": 1, "retried": 2, "failed": 0,
                                        "refused": 0, "dropped": 0, "pending": 0}  # fmt: skip
    assert [(e["attempt"], e["status"]) for e in history["errors"]] == [(1, 500), (2, 503)]
    assert [(s["attempt"], s["status"]) for s in history["successes"]] == [(3, 200)]


async def test_after_the_last_retry_the_device_gets_hook_error(world: World) -> None:
    member = world.members[1].device_id_hex
    async with receiving() as receiver:
        receiver.default = Answer(500, b"broken")
        hook = await create(world, receiver)
        await publish(world, world.members[1], ["temp"])
        await receiver.wait_for(3)
        (error,) = await device_events(world, member, "hook-error/temp/", 1)
    assert error.name == "hook-error/temp/0" and error.data == b"HTTP 500 Internal Server Error"
    history = await world.api.ok("GET", f"/v1/products/{P}/webhooks/{hook['id']}/deliveries")
    assert history["counters"]["failed"] == 1 and history["counters"]["sent"] == 3
    (failed,) = history["failed_deliveries"]
    assert (failed["state"], failed["attempts"], failed["last_status"]) == ("failed", 3, 500)
    await trio.sleep(RETRIES[-1] + 0.2)
    assert len(receiver.requests) == 3  # no fourth try


async def test_a_4xx_answer_is_final(world: World) -> None:
    async with receiving() as receiver:
        receiver.default = Answer(404, b"no such thing")
        await create(world, receiver)
        await publish(world, world.members[0], ["temp"])
        await device_events(world, world.members[0].device_id_hex, "hook-error/temp/", 1)
    assert len(receiver.requests) == 1


async def test_only_privileged_device_events_trigger_and_hook_events_never(world: World) -> None:
    async with receiving() as receiver:
        await create(world, receiver)
        await create(world, receiver, event="hook")  # would match hook-* were they not excluded
        await publish(world, world.stranger, ["temp"], Status.QUARANTINED)
        await world.api.ok("POST", f"/v1/products/{P}/events", json={"name": "hook-response/temp/0"})
        await world.api.ok("POST", f"/v1/products/{P}/events", json={"name": "other"})
        await publish(world, world.members[0], ["temp/ok"])
        await receiver.wait_for(1)
        await trio.sleep(0.3)
    assert [r.body.count(b"temp%2Fok") for r in receiver.requests] == [1]


async def test_an_api_event_triggers_but_has_no_device_to_answer(world: World) -> None:
    async with receiving() as receiver:
        await create(world, receiver)
        await world.api.ok("POST", f"/v1/products/{P}/events", json={"name": "temp/api", "data": "1"})
        await receiver.wait_for(1)
    assert b"coreid=api" in receiver.requests[0].body


async def test_a_slow_target_does_not_slow_another_host_or_the_device(world: World) -> None:
    async with receiving("127.0.0.1") as slow, receiving("127.0.0.2") as fast:
        slow.default = Answer(200, b"late", delay=3.0)
        await create(world, slow)
        await create(world, fast)
        started = trio.current_time()
        await publish(world, world.members[0], ["temp/1", "temp/2", "temp/3", "temp/4"])
        published = trio.current_time() - started
        await fast.wait_for(4, within=2.5)
        fast_done = trio.current_time() - started
    assert published < 2.5 and fast_done < 2.9  # the slow host is still answering its first requests


async def test_disabled_and_deleted_webhooks_send_nothing(world: World) -> None:
    async with receiving() as receiver:
        hook = await create(world, receiver)
        path = f"/v1/products/{P}/webhooks/{hook['id']}"
        config = {**hook["config"], "disabled": True}
        replaced = await world.api.ok("PUT", path, json=config)
        assert replaced["config"]["disabled"] is True
        await publish(world, world.members[0], ["temp"])
        await world.api.ok("DELETE", path)
        assert (await world.api.call("GET", path)).status_code == 404
        await publish(world, world.members[0], ["temp"])
        await trio.sleep(0.3)
    assert receiver.requests == []


async def test_webhook_api_refuses_bad_input_naming_the_field(world: World) -> None:
    base = f"/v1/products/{P}/webhooks"
    for body, field_name in [
        ({"event": "temp", "url": "ftp://example.com/"}, "url"),
        ({"event": "temp", "url": "https://example.com/", "json": {"a": "{{#open}}"}}, "json.a"),
        ({"event": "temp", "url": "https://example.com/", "body": "{{/x}}"}, "body"),
        ({"event": "temp", "url": "https://example.com/", "requestType": "TRACE"}, "requestType"),
        ({"event": "", "url": "https://example.com/"}, "event"),
        ({"event": "temp", "url": "https://example.com/", "extra": 1}, "extra"),
    ]:
        response = await world.api.call("POST", base, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field_name, (body, response.json())
    assert (await world.api.call("GET", f"{base}/12345")).status_code == 404
    assert (await world.api.call("GET", "/v1/products/999/webhooks")).status_code == 404
    listed = await world.api.ok("GET", base)
    assert listed == {"webhooks": []}


async def test_private_targets_are_refused_unless_allowed(tmp_path: Path, nursery: trio.Nursery) -> None:
    api = await start_api(tmp_path, nursery, webhook_retry_delays=RETRIES)  # webhook_allow_private left off
    async with api.http, receiving() as receiver:
        world = await make_world(api)
        literal = await world.api.call("POST", f"/v1/products/{P}/webhooks",
                                       json={"event": "temp", "url": receiver.url})  # fmt: skip
        assert literal.status_code == 400 and "private, loopback" in literal.json()["error"]
        # A name is checked when it is resolved, at delivery: localhost is refused then.
        hook = await world.api.ok("POST", f"/v1/products/{P}/webhooks",
                                  json={"event": "temp", "url": f"http://localhost:{receiver.port}/"})  # fmt: skip
        await publish(world, world.members[0], ["temp"])
        (error,) = await device_events(world, world.members[0].device_id_hex, "hook-error/temp/", 1)
        history = await world.api.ok("GET", f"/v1/products/{P}/webhooks/{hook['id']}/deliveries")
    assert receiver.requests == [] and error.data == b"target refused"
    assert history["counters"]["refused"] == 1 and "private, loopback" in history["errors"][0]["error"]
    world.api.server.shutdown()


async def test_the_device_receives_the_response_chunks_on_its_link(world: World) -> None:
    """The whole loop as firmware sees it: subscribe to hook-response/, publish, and read the
    answer (after the receiver failed once) as EVENT messages addressed to this device only."""
    server = world.api.server
    member, other = world.members
    async with receiving() as receiver:
        receiver.script = [Answer(500, b"down"), Answer(200, b"r" * 600)]
        await create(world, receiver)
        settings = DeviceSettings(product_id=P)
        key = server.ctx.server_key.public
        async with (
            connect_device(await trio.open_tcp_stream("127.0.0.1", server.device_port), member, key, settings) as dev,
            connect_device(await trio.open_tcp_stream("127.0.0.1", server.device_port), other, key, settings) as peer,
        ):
            assert await dev.subscribe("hook-response/temp") is SubscribeResult.ACCEPTED
            assert await peer.subscribe("hook-") is SubscribeResult.ACCEPTED
            assert await dev.publish("temp", b"1") is AckResult.ACCEPTED
            with trio.fail_after(10):
                first, second = await dev.receive_event(), await dev.receive_event()
            with trio.move_on_after(0.3):
                stray = await peer.receive_event()
                raise AssertionError(f"another device got {stray}")
    assert (first.name, len(first.data), second.name, len(second.data)) == (
        "hook-response/temp/0", 512, "hook-response/temp/1", 88,
    )  # fmt: skip
    assert first.to_device and first.source is None  # from the cloud, for this device alone
    assert len(receiver.requests) == 2


async def test_a_webhook_deleted_while_its_request_runs_stops_nothing_else(world: World) -> None:
    async with receiving() as receiver:
        receiver.default = Answer(200, b"late", delay=0.5)
        hook = await create(world, receiver)
        await publish(world, world.members[0], ["temp/1"])
        await receiver.wait_for(1)
        await world.api.ok("DELETE", f"/v1/products/{P}/webhooks/{hook['id']}")
        await trio.sleep(0.8)  # its answer comes for a delivery that went with the webhook
        second = await create(world, receiver)
        await publish(world, world.members[0], ["temp/2"])
        await receiver.wait_for(2)
        history = await world.api.ok("GET", f"/v1/products/{P}/webhooks/{second['id']}/deliveries")
    assert history["counters"]["triggered"] == 1 and history["counters"]["pending"] <= 1
