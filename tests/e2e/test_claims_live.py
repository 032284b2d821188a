"""Claiming end to end: a customer's claim code, presented by devices over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from firmware_sim.device import DeviceSettings, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import Status
from server.rules.claims import code_hash
from server.store import Transaction
from server.store.tx import StoreTx

from ..api.conftest import PASSWORD, Api, start_api

P, Q = 5001, 5002


@dataclass
class World:
    api: Api
    member: DeviceIdentity  # a member of P: connects with status ok, holds `claim`
    stranger: DeviceIdentity  # reports P but is not a member: quarantined
    token: str  # customer kim of P


@pytest.fixture
async def world(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[World]:
    api = await start_api(tmp_path, nursery)
    member, stranger = DeviceIdentity.generate(), DeviceIdentity.generate()
    async with api.http:
        for identity in (member, stranger):
            body = {"public_key": identity.key.public.hex()}
            await api.ok("POST", f"/v1/provisioning/{identity.device_id_hex}", json=body)
        for product in (P, Q):
            await api.ok("POST", "/v1/products", json={"name": f"Lamp {product}", "id": product})
        await api.ok("POST", f"/v1/products/{P}/devices", json={"id": member.device_id_hex})
        await api.ok("POST", f"/v1/products/{P}/customers", json={"username": "kim", "password": PASSWORD})
        token = (await api.login("kim"))["access_token"]
        yield World(api, member, stranger, token)
    api.server.shutdown()


async def connect(world: World, identity: DeviceIdentity, code: str, status: Status, product: int = P) -> None:
    server = world.api.server
    stream = await trio.open_tcp_stream("127.0.0.1", server.device_port)
    settings = DeviceSettings(product_id=product, claim_code=code)
    async with connect_device(stream, identity, server.ctx.server_key.public, settings) as device:
        assert device.state.status is status
    await server.ctx.store.flush()


async def claim_code(world: World) -> str:
    answer = await world.api.ok("POST", f"/v1/products/{P}/device_claims", world.token)
    assert len(answer["claim_code"]) == 63 and answer["expires_at"].endswith("Z")
    code: str = answer["claim_code"]
    return code


async def owner(world: World, identity: DeviceIdentity) -> object:
    device = await world.api.ok("GET", f"/v1/products/{P}/devices/{identity.device_id_hex}")
    return device["owner"]


async def audit(world: World) -> list[str]:
    return [a["action"] for a in (await world.api.ok("GET", f"/v1/products/{P}/audit?limit=1000"))["audit"]]


async def test_a_privileged_device_is_claimed_and_a_quarantined_one_is_not(world: World) -> None:
    code = await claim_code(world)
    # Quarantined: no `claim` privilege. Refused and recorded; the code stays usable.
    await connect(world, world.stranger, code, Status.QUARANTINED)
    assert "claim_refused" in await audit(world)
    await connect(world, world.member, code, Status.OK)
    assert await owner(world, world.member) not in (None, {})
    assert "device_claimed" in await audit(world)
    listed = await world.api.ok("POST", f"/v1/products/{P}/device_claims", world.token)
    assert listed["device_ids"] == [world.member.device_id_hex]
    # Single use: the same code claims nothing more (the member is owned anyway; unclaim and retry).
    await world.api.ok("DELETE", f"/v1/products/{P}/devices/{world.member.device_id_hex}/owner")
    await connect(world, world.member, code, Status.OK)
    assert await owner(world, world.member) in (None, {})


async def test_expired_and_foreign_codes_claim_nothing(world: World) -> None:
    code = await claim_code(world)
    await connect(world, world.member, "not-a-code", Status.OK)
    await connect(world, world.member, code, Status.QUARANTINED, product=Q)  # another product's firmware
    assert await owner(world, world.member) in (None, {})

    def expire(s: StoreTx) -> None:
        s._w.execute("UPDATE claim_codes SET expires_at = 1 WHERE code_hash = ?", (code_hash(code),))  # type: ignore[attr-defined]

    await world.api.server.ctx.store.write(Transaction(expire))
    await connect(world, world.member, code, Status.OK)
    assert await owner(world, world.member) in (None, {})
    assert (await audit(world)).count("claim_refused") == 3


async def test_only_the_products_customers_get_codes(world: World) -> None:
    api = world.api
    assert (await api.call("POST", f"/v1/products/{P}/device_claims")).status_code == 403  # a user
    assert (await api.call("POST", f"/v1/products/{Q}/device_claims", world.token)).status_code == 403
    assert (await api.call("POST", "/v1/products/9999/device_claims", world.token)).status_code == 404
    assert (await api.http.post(f"/v1/products/{P}/device_claims")).status_code == 401
