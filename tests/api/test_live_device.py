"""End to end: a simulated device on the device port, an operator on the HTTP API, one server.

Operator actions reach the connected device at once, as a STATUS update on the same link.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from firmware_sim.device import DeviceSettings, SimDevice, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import Privilege, Status

from .conftest import Api

P, Q = 301, 302


@asynccontextmanager
async def online(api: Api, identity: DeviceIdentity, product: int) -> AsyncIterator[SimDevice]:
    stream = await trio.open_tcp_stream("127.0.0.1", api.server.device_port)
    key = api.server.ctx.server_key.public
    async with connect_device(stream, identity, key, DeviceSettings(product_id=product)) as device:
        await device.ping()  # answered only after READY: the session is live
        yield device


async def listed(api: Api, product: int, device_id: str, status: str) -> dict[str, Any]:
    """The device as the product lists it, once the session's writes are committed."""
    with trio.fail_after(5):
        while True:
            page = await api.ok("GET", f"/v1/products/{product}/devices", params={"status": status})
            for device in page["devices"]:
                if device["id"] == device_id:
                    return dict(device)
            await trio.sleep(0.01)


async def test_approve_then_deny_a_quarantined_device_while_it_is_connected(api: Api) -> None:
    await api.product("Widget", P)  # policy: quarantine
    identity = DeviceIdentity.generate()
    await api.provision(identity)
    async with online(api, identity, P) as device:
        assert (device.state.status, device.state.privileges) == (Status.QUARANTINED, Privilege.NONE)
        shown = await listed(api, P, identity.device_id_hex, "quarantined")
        assert shown["quarantined"] and shown["online"] and shown["connected"]
        assert (shown["product_id"], shown["firmware_product_id"], shown["mismatch"]) == (P, P, False)
        assert shown["last_handshake_at"] is not None and shown["platform_id"] == 6

        approved = await api.ok("POST", f"/v1/products/{P}/devices", json={"id": identity.device_id_hex})
        assert approved["updatedDeviceIds"] == [identity.device_id_hex]
        with trio.fail_after(5):
            await device.wait_status(Status.OK)
        assert device.state.privileges == Privilege.all() and device.state.product_id == P

        denied = await api.ok("DELETE", f"/v1/products/{P}/devices/{identity.device_id_hex}", json={"deny": True})
        assert denied["action"] == "denied"
        with trio.fail_after(5):
            await device.wait_status(Status.DENIED)
        assert device.state.privileges == Privilege.NONE
        assert device.closed is None  # the same connection throughout
        assert [u.status for u in device.state.updates] == [Status.OK, Status.DENIED]
    audit = (await api.ok("GET", f"/v1/products/{P}/audit"))["audit"]
    trail = [(e["actor"], e["action"]) for e in audit if e["device_id"] == identity.device_id_hex]
    assert trail == [
        ("device", "admission"),  # quarantined at connection
        ("user:admin", "approved"),
        ("user:admin", "admission"),  # re-decided on the live session
        ("user:admin", "denied"),
        ("user:admin", "admission"),
    ]


async def test_a_device_quarantined_by_other_firmware_moves_only_with_move(api: Api) -> None:
    await api.product("Widget", P)
    await api.product("Gadget", Q)
    identity = DeviceIdentity.generate()
    await api.provision(identity)
    await api.ok("POST", f"/v1/products/{P}/devices", json={"id": identity.device_id_hex})
    async with online(api, identity, Q) as device:  # P's device running Q's firmware
        assert device.state.status is Status.QUARANTINED
        shown = await listed(api, Q, identity.device_id_hex, "quarantined")
        assert (shown["product_id"], shown["firmware_product_id"], shown["mismatch"]) == (Q, Q, True)

        refused = await api.call("POST", f"/v1/products/{Q}/devices", json={"id": identity.device_id_hex})
        assert refused.status_code == 409 and refused.json()["field"] == "move"
        await api.ok("POST", f"/v1/products/{Q}/devices", json={"id": identity.device_id_hex, "move": True})
        with trio.fail_after(5):
            await device.wait_status(Status.OK)
        assert device.state.product_id == Q and device.state.privileges == Privilege.all()
    assert (await api.call("GET", f"/v1/products/{P}/devices/{identity.device_id_hex}")).status_code == 404
