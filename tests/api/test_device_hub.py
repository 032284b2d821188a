"""The devices hub's API: list filters by firmware and online, per-product counts, the change stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from firmware_sim.device import DeviceSettings, SimDevice, connect_device
from firmware_sim.identity import DeviceIdentity
from server.api.routes_device_hub import change_notice
from server.store.records import AuditRecord

from .conftest import Api

P, Q = 601, 602


@asynccontextmanager
async def online(api: Api, identity: DeviceIdentity, product: int, version: int = 1) -> AsyncIterator[SimDevice]:
    stream = await trio.open_tcp_stream("127.0.0.1", api.server.device_port)
    settings = DeviceSettings(product_id=product, firmware_version=version)
    async with connect_device(stream, identity, api.server.ctx.server_key.public, settings) as device:
        await device.ping()  # answered only after READY: the session is live
        yield device


async def settled(api: Api, identity: DeviceIdentity) -> None:
    """The session has ended and its writes are committed."""
    with trio.fail_after(5):
        await api.server.ctx.registry.wait_gone(identity.device_id_hex)
    await api.server.ctx.store.flush()


async def listed(api: Api, **query: Any) -> set[str]:
    body = await api.ok("GET", f"/v1/products/{P}/devices", params=query)
    return {d["id"] for d in body["devices"]}


async def fleet(api: Api) -> list[DeviceIdentity]:
    await api.product("Hub", P)
    ids = [DeviceIdentity.generate() for _ in range(3)]
    for identity in ids:
        await api.provision(identity)
    for identity in ids[:2]:
        await api.ok("POST", f"/v1/products/{P}/devices", json={"id": identity.device_id_hex})
    return ids


async def test_the_list_filters_by_firmware_version_and_online(api: Api) -> None:
    a, b, c = await fleet(api)
    async with online(api, b, P, version=5):
        pass
    await settled(api, b)
    async with online(api, a, P, version=3), online(api, c, P, version=3):
        await api.server.ctx.store.flush()
        assert await listed(api, online="true") == {a.device_id_hex, c.device_id_hex}  # c: quarantined, online
        assert await listed(api, online="false") == {b.device_id_hex}
        assert await listed(api, firmwareVersion=5) == {b.device_id_hex}
        assert await listed(api, firmwareVersion=3, status="approved") == {a.device_id_hex}
        assert await listed(api, firmwareVersion=3, online="true", status="quarantined") == {c.device_id_hex}
        assert await listed(api, firmwareVersion=9) == set()
    bad = await api.call("GET", f"/v1/products/{P}/devices", params={"firmwareVersion": "x"})
    assert bad.status_code == 400 and bad.json()["field"] == "firmwareVersion"
    bad = await api.call("GET", f"/v1/products/{P}/devices", params={"online": "maybe"})
    assert bad.status_code == 400 and bad.json()["field"] == "online"


async def test_device_counts(api: Api) -> None:
    a, b, c = await fleet(api)
    empty = await api.ok("GET", f"/v1/products/{P}/device_counts")
    assert empty == {"members": 2, "online": 0, "quarantined": 0, "denied": 0,
                     "firmware": [{"version": None, "devices": 2}]}  # fmt: skip
    async with online(api, b, P, version=5):
        pass
    await settled(api, b)
    async with online(api, a, P, version=3), online(api, c, P, version=3):
        await api.server.ctx.store.flush()
        counts = await api.ok("GET", f"/v1/products/{P}/device_counts")
    assert counts == {"members": 2, "online": 1, "quarantined": 1, "denied": 0,
                      "firmware": [{"version": 3, "devices": 1}, {"version": 5, "devices": 1}]}  # fmt: skip
    await api.ok("DELETE", f"/v1/products/{P}/devices/{c.device_id_hex}", json={"deny": True})
    counts = await api.ok("GET", f"/v1/products/{P}/device_counts")
    assert (counts["quarantined"], counts["denied"]) == (0, 1)


async def test_counts_and_changes_follow_the_product_rules(api: Api) -> None:
    await api.product("Hub", P)
    await api.product("Other", Q)
    token = await api.user("nora")
    assert (await api.call("GET", f"/v1/products/{Q}/device_counts", token)).status_code == 403
    assert (await api.call("GET", f"/v1/products/{Q}/changes", token)).status_code == 403
    cookie_only = await api.http.get(f"/v1/products/{P}/changes", headers={"Cookie": f"fg_session={token}"})
    assert cookie_only.status_code == 401  # an API token in the cookie is no console session


@dataclass
class Notices:
    items: list[dict[str, Any]] = field(default_factory=list)
    ids: list[int | None] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    async def wait_for(self, kind: str, device_id: str) -> dict[str, Any]:
        with trio.fail_after(10):
            while True:
                for item in self.items:
                    if item["kind"] == kind and item["device_id"] == device_id:
                        return item
                await self.changed.wait()
                self.changed = trio.Event()


async def read_changes(api: Api, notices: Notices, headers: dict[str, str] | None = None) -> None:
    path = f"/v1/products/{P}/changes"
    async with api.http.stream("GET", path, headers={**api.admin, **(headers or {})}, timeout=None) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        current: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "" and current:
                assert current["event"] == "change"
                notices.items.append(json.loads(current["data"]))
                notices.ids.append(int(current["id"]) if "id" in current else None)
                notices.changed.set()
                current = {}
            elif line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value


async def test_the_change_stream_tells_what_happens_to_devices(api: Api, nursery: trio.Nursery) -> None:
    a, _, c = await fleet(api)
    notices = Notices()
    nursery.start_soon(read_changes, api, notices)
    await trio.sleep(0.3)  # the stream starts live: nothing of the fleet's set-up is replayed
    assert notices.items == []
    async with online(api, c, P):
        arrived = await notices.wait_for("quarantined", c.device_id_hex)
        assert arrived["status"] == "quarantined" and arrived["actor"] == "device"
        await api.ok("POST", f"/v1/products/{P}/devices", json={"id": c.device_id_hex})
        approved = await notices.wait_for("approved", c.device_id_hex)
        assert approved["actor"] == "user:admin"
    await notices.wait_for("offline", c.device_id_hex)
    async with online(api, a, P):
        assert (await notices.wait_for("online", a.device_id_hex))["status"] == "ok"
    await api.ok("DELETE", f"/v1/products/{P}/devices/{a.device_id_hex}", json={"deny": True})
    await notices.wait_for("denied", a.device_id_hex)

    # Last-Event-ID resumes after a notice: the ones after it again, in order.
    first_id = next(i for i in notices.ids if i is not None)
    resumed = Notices()
    nursery.start_soon(read_changes, api, resumed, {"Last-Event-ID": str(first_id)})
    await resumed.wait_for("denied", a.device_id_hex)
    kinds = [n["kind"] for n in resumed.items]
    assert kinds[0] == "approved" and "offline" not in kinds  # offline notices are live only
    nursery.cancel_scope.cancel()


def test_notices_name_the_rollout_and_hide_the_audit_from_those_who_may_not_read_it() -> None:
    step = AuditRecord(7, 0.0, "rollout:3", "rollout_progress", P, None, "stage 1 complete", {"rollout": 3})
    assert change_notice(step, with_audit=True) == {
        "id": 7, "kind": "rollout", "device_id": None, "at": "1970-01-01T00:00:00.000Z", "rollout": 3,
        "action": "rollout_progress", "actor": "rollout:3", "reason": "stage 1 complete",
    }  # fmt: skip
    unlocked = AuditRecord(8, 0.0, "user:ann", "firmware_unlocked", P, "ab" * 12, "", {"version": None})
    assert change_notice(unlocked, with_audit=False) == {
        "id": 8, "kind": "updated", "device_id": "ab" * 12, "at": "1970-01-01T00:00:00.000Z"
    }  # fmt: skip
