"""Reading back what happened, in pages and filtered: the product stream's stored events
(`event_history`), the audit trail by device, actor and action, paged back with `before`, and a
rollout's devices in one state (its failed devices with their reasons)."""

from __future__ import annotations

import time

from server.store.records import EventRecord

from .conftest import Api
from .test_previews import viewer, world  # noqa: F401  (the fixture)
from .test_rollouts import DEVICES, ROLLOUTS, P

HISTORY = f"/v1/products/{P}/event_history"
AUDIT = f"/v1/products/{P}/audit"


async def publish(api: Api, device: str, name: str, data: str, product: int | None = P) -> None:
    record = EventRecord(device, name, data.encode(), 60, True, time.time(), product_id=product)
    await api.server.ctx.event_log.append_and_wait(record)


async def test_event_history_filters_and_pages_back(world: Api) -> None:  # noqa: F811
    a, b = DEVICES[0], DEVICES[1]
    for i in range(5):
        await publish(world, a, f"temp/{i}", f"{20 + i}")
        await publish(world, b, f"door/{i}", "open")
    await publish(world, b, "temp/not-routed", "x", product=None)  # not in the product's stream

    everything = (await world.ok("GET", HISTORY))["events"]
    assert len(everything) == 10 and [e["id"] for e in everything] == sorted(e["id"] for e in everything)
    first = everything[0]
    assert set(first) == {"id", "event", "data", "ttl", "published_at", "coreid", "public"}
    assert (first["event"], first["data"], first["coreid"], first["public"]) == ("temp/0", "20", a, False)

    temps = (await world.ok("GET", HISTORY, params={"prefix": "temp/"}))["events"]
    assert [e["event"] for e in temps] == [f"temp/{i}" for i in range(5)]
    mine = (await world.ok("GET", HISTORY, params={"device_id": b.upper()}))["events"]
    assert {e["coreid"] for e in mine} == {b} and len(mine) == 5

    # Paging back: the newest two, then the two before them, each page oldest first.
    last = (await world.ok("GET", HISTORY, params={"before": 10**18 - 1, "limit": 2, "prefix": "temp"}))["events"]
    assert [e["event"] for e in last] == ["temp/3", "temp/4"]
    earlier = await world.ok("GET", HISTORY, params={"before": last[0]["id"], "limit": 2, "prefix": "temp"})
    assert [e["event"] for e in earlier["events"]] == ["temp/1", "temp/2"]
    after = (await world.ok("GET", HISTORY, params={"after": everything[-2]["id"]}))["events"]
    assert [e["id"] for e in after] == [everything[-1]["id"]]

    # A prefix is matched literally: SQL wildcards are characters like any other.
    assert (await world.ok("GET", HISTORY, params={"prefix": "t%"}))["events"] == []
    assert (await world.ok("GET", HISTORY, params={"prefix": "_emp"}))["events"] == []


async def test_event_history_bad_queries_are_400s_and_viewers_may_read(world: Api) -> None:  # noqa: F811
    for params, field in [
        ({"device_id": "nope"}, "device_id"),
        ({"prefix": "x" * 65}, "prefix"),
        ({"before": 0}, "before"),
        ({"limit": 1001}, "limit"),
    ]:
        response = await world.call("GET", HISTORY, params=params)
        assert response.status_code == 400 and response.json()["field"] == field, (params, response.text)
    token = await viewer(world)
    assert (await world.ok("GET", HISTORY, token))["events"] == []
    outsider = await world.user("olga")
    assert (await world.call("GET", HISTORY, outsider)).status_code in (403, 404)


async def test_audit_filters_by_device_actor_and_action_and_pages_back(world: Api) -> None:  # noqa: F811
    everything = (await world.ok("GET", AUDIT, params={"limit": 1000}))["audit"]
    assert len(everything) > 10
    about = (await world.ok("GET", AUDIT, params={"device_id": DEVICES[0]}))["audit"]
    assert about and {e["device_id"] for e in about} == {DEVICES[0]}
    assert about == [e for e in everything if e["device_id"] == DEVICES[0]]
    uploads = (await world.ok("GET", AUDIT, params={"action": "firmware_uploaded"}))["audit"]
    assert [e["detail"]["version"] for e in uploads] == [1, 2, 3]  # product Q's upload is not in P's trail
    by_admin = (await world.ok("GET", AUDIT, params={"actor": "user:admin", "limit": 1000}))["audit"]
    assert by_admin == [e for e in everything if e["actor"] == "user:admin"]
    assert (await world.ok("GET", AUDIT, params={"actor": "user:nobody"}))["audit"] == []

    newest = (await world.ok("GET", AUDIT, params={"before": 2**62, "limit": 3}))["audit"]
    assert newest == everything[-3:]
    before = (await world.ok("GET", AUDIT, params={"before": newest[0]["id"], "limit": 3}))["audit"]
    assert before == everything[-6:-3]

    bad = await world.call("GET", AUDIT, params={"device_id": "zz"})
    assert bad.status_code == 400 and bad.json()["field"] == "device_id"


async def test_rollout_devices_in_one_state(world: Api) -> None:  # noqa: F811
    rollout = (await world.ok("POST", ROLLOUTS, json={"version": 2, "product_default": True}))["rollout"]
    path = f"{ROLLOUTS}/{rollout['id']}/devices"
    assert await world.ok("GET", path, params={"state": "failed"}) == {"devices": [], "meta": {"total_pages": 0}}
    await world.ok("POST", f"{ROLLOUTS}/{rollout['id']}/abort")
    skipped = await world.ok("GET", path, params={"state": "skipped", "per_page": 3})
    assert skipped["meta"] == {"total_pages": 2} and len(skipped["devices"]) == 3
    assert all(d["state"] == "skipped" and d["reason"].startswith("rollout aborted") for d in skipped["devices"])
    rest = await world.ok("GET", path, params={"state": "skipped", "per_page": 3, "page": 2})
    assert len(rest["devices"]) == 1
    bad = await world.call("GET", path, params={"state": "exploded"})
    assert bad.status_code == 400 and bad.json()["field"] == "state"
