"""Device groups, a device's groups and its locked firmware version, and who may change them."""

from __future__ import annotations

from typing import Any

import pytest

from firmware_sim import firmware

from .conftest import Api

P = 4201
DEVICE = "0123456789abcdef01234567"
OUTSIDER_DEVICE = "fedcba9876543210fedcba98"


async def upload(api: Api, version: int, token: str | None = None) -> Any:
    files = {"binary": ("fw.bin", firmware.build(P, version, 3000), "application/octet-stream")}
    form = {"version": str(version), "title": f"v{version}"}
    return await api.call("POST", f"/v1/products/{P}/firmware", token, data=form, files=files)


@pytest.fixture
async def world(api: Api) -> Api:
    await api.product("Lamp", P)
    await api.product("Other", P + 1)
    await api.ok("POST", f"/v1/products/{P}/devices", json={"id": DEVICE})
    await api.ok("POST", f"/v1/products/{P + 1}/devices", json={"id": OUTSIDER_DEVICE})
    for version in (1, 2):
        assert (await upload(api, version)).status_code == 201
    return api


async def put_device(api: Api, body: dict[str, Any], token: str | None = None, device: str = DEVICE) -> Any:
    return await api.call("PUT", f"/v1/products/{P}/devices/{device}", token, json=body)


async def test_groups_create_list_show_delete(world: Api) -> None:
    api = world
    created = await api.call("POST", f"/v1/products/{P}/groups", json={"name": "beta", "description": "testers"})
    assert created.status_code == 201, created.text
    group = created.json()["group"]
    assert group["name"] == "beta" and group["description"] == "testers" and group["fw_version"] is None
    assert group["device_count"] == 0 and group["created_at"].endswith("Z")
    await api.ok("POST", f"/v1/products/{P}/groups", json={"name": "a_b-9"})
    listing = await api.ok("GET", f"/v1/products/{P}/groups")
    assert [g["name"] for g in listing["groups"]] == ["a_b-9", "beta"]
    assert (await api.ok("GET", f"/v1/products/{P}/groups/beta"))["group"] == group
    assert (await api.ok("GET", f"/v1/products/{P + 1}/groups"))["groups"] == []  # per product

    assert (await api.ok("DELETE", f"/v1/products/{P}/groups/beta")) == {"ok": True}
    for method in ("GET", "DELETE"):
        gone = await api.call(method, f"/v1/products/{P}/groups/beta")
        assert gone.status_code == 404 and gone.json()["field"] == "name"
    actions = [a["action"] for a in (await api.ok("GET", f"/v1/products/{P}/audit"))["audit"]]
    assert actions[-3:] == ["group_created", "group_created", "group_deleted"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "Beta"}, 400, "name"),
        ({"name": ""}, 400, "name"),
        ({"name": "has space"}, 400, "name"),
        ({"name": "x" * 65}, 400, "name"),
        ({"name": 5}, 400, "name"),
        ({"name": "ok", "description": "x" * 4097}, 400, "description"),
        ({"name": "ok", "color": "#fff"}, 400, "color"),
        ({}, 400, "name"),
        ({"name": "dup"}, 409, "name"),
    ],
)
async def test_bad_groups(world: Api, body: dict[str, Any], status: int, field: str) -> None:
    await world.ok("POST", f"/v1/products/{P}/groups", json={"name": "dup"})
    response = await world.call("POST", f"/v1/products/{P}/groups", json=body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


async def test_a_devices_groups_and_lock(world: Api) -> None:
    api = world
    for name in ("beta", "eu"):
        await api.ok("POST", f"/v1/products/{P}/groups", json={"name": name})
    device = await put_device(api, {"groups": ["eu", "beta"]})
    assert device.status_code == 200 and device.json()["groups"] == ["beta", "eu"], device.text
    assert (await api.ok("GET", f"/v1/products/{P}/groups/eu"))["group"]["device_count"] == 1
    assert (await put_device(api, {"groups": ["eu"], "notes": "on the bench"})).json()["groups"] == ["eu"]
    assert (await put_device(api, {"groups": []})).json()["groups"] == []

    assert (await put_device(api, {"desired_firmware_version": 1})).status_code == 200
    refused = await api.call("DELETE", f"/v1/products/{P}/firmware/1")
    assert refused.status_code == 409 and "locked" in refused.json()["error"]
    assert (await put_device(api, {"desired_firmware_version": 2})).status_code == 200
    assert (await api.call("DELETE", f"/v1/products/{P}/firmware/1")).status_code == 200  # no longer locked to 1
    assert (await put_device(api, {"desired_firmware_version": None})).status_code == 200
    assert (await api.call("DELETE", f"/v1/products/{P}/firmware/2")).status_code == 200

    audit = (await api.ok("GET", f"/v1/products/{P}/audit"))["audit"]
    mine = [(a["action"], a["detail"]) for a in audit if a["device_id"] == DEVICE]
    assert [action for action, _ in mine][-7:] == [
        "device_groups_set", "device_groups_set", "device_updated", "device_groups_set",
        "firmware_locked", "firmware_locked", "firmware_unlocked",
    ]  # fmt: skip
    assert ("firmware_unlocked", {"version": None, "was": 2}) in mine
    assert ("device_groups_set", {"groups": [], "was": ["eu"]}) in mine


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"groups": ["nope"]}, 400, "groups"),
        ({"groups": ["BAD NAME"]}, 400, "groups"),
        ({"groups": "beta"}, 400, "groups"),
        ({"groups": ["beta"] * 257}, 400, "groups"),
        ({"desired_firmware_version": 9}, 400, "desired_firmware_version"),
        ({"desired_firmware_version": 0}, 400, "desired_firmware_version"),
        ({"desired_firmware_version": 70000}, 400, "desired_firmware_version"),
        ({"desired_firmware_version": "1"}, 400, "desired_firmware_version"),
        ({"notes": "kept?", "groups": ["nope"]}, 400, "groups"),
        ({"notes": "kept?", "desired_firmware_version": 9}, 400, "desired_firmware_version"),
    ],
)
async def test_bad_device_updates_change_nothing(world: Api, body: dict[str, Any], status: int, field: str) -> None:
    await world.ok("POST", f"/v1/products/{P}/groups", json={"name": "beta"})
    response = await put_device(world, body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    device = await world.ok("GET", f"/v1/products/{P}/devices/{DEVICE}")
    assert device["notes"] is None


async def test_only_members_get_groups_or_locks(world: Api) -> None:
    await world.ok("POST", f"/v1/products/{P}/groups", json={"name": "beta"})
    for body in ({"groups": ["beta"]}, {"desired_firmware_version": 1}):
        response = await put_device(world, body, device=OUTSIDER_DEVICE)
        assert response.status_code == 404, response.text


async def test_who_may_do_what(world: Api) -> None:
    api = world
    await api.ok("POST", f"/v1/products/{P}/groups", json={"name": "beta"})
    tokens = {}
    for role in ("view_only", "support", "developer"):
        tokens[role] = await api.user(role)
        await api.ok("POST", f"/v1/products/{P}/team", json={"username": role, "role": role})
    tokens["outsider"] = await api.user("outsider")
    release = {"version": 1, "product_default": True}
    cases: list[tuple[str, str, dict[str, Any], set[str]]] = [
        ("GET", f"/v1/products/{P}/firmware", {}, {"view_only", "support", "developer"}),
        ("GET", f"/v1/products/{P}/firmware/1", {}, {"view_only", "support", "developer"}),
        ("GET", f"/v1/products/{P}/firmware/1/binary", {}, {"view_only", "support", "developer"}),
        ("GET", f"/v1/products/{P}/groups", {}, {"view_only", "support", "developer"}),
        ("PUT", f"/v1/products/{P}/firmware/release", {"json": release}, {"developer"}),
        ("POST", f"/v1/products/{P}/groups", {"json": {"name": "g"}}, {"developer"}),
        ("PUT", f"/v1/products/{P}/devices/{DEVICE}", {"json": {"groups": ["beta"]}}, {"developer"}),
        ("PUT", f"/v1/products/{P}/devices/{DEVICE}", {"json": {"desired_firmware_version": 1}}, {"developer"}),
        ("PUT", f"/v1/products/{P}/devices/{DEVICE}", {"json": {"notes": "n"}}, {"support", "developer"}),
    ]
    for method, path, kwargs, allowed in cases:
        for role, token in tokens.items():
            response = await api.call(method, path, token, **kwargs)
            expected = role in allowed
            assert (response.status_code < 300) == expected, (method, path, role, response.text)
            if not expected:
                assert response.status_code == 403

    for role, token in tokens.items():
        response = await upload(api, 3, token)
        assert response.status_code == (201 if role == "developer" else 403), (role, response.text)
    assert (await api.call("DELETE", f"/v1/products/{P}/groups/g", tokens["view_only"])).status_code == 403
    assert (await api.call("DELETE", f"/v1/products/{P}/firmware/3", tokens["support"])).status_code == 403
    await api.ok("PUT", f"/v1/products/{P}/firmware/release", json={"version": 1})  # unrelease, then delete it
    assert (await api.call("DELETE", f"/v1/products/{P}/firmware/3", tokens["developer"])).status_code == 200
    assert (await api.call("DELETE", f"/v1/products/{P}/groups/g", tokens["developer"])).status_code == 200


async def test_scopes_narrow_firmware_tokens(world: Api) -> None:
    api = world
    await api.user("dev")
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "dev", "role": "developer"})
    reader = (await api.login("dev", scope="firmware:read"))["access_token"]
    assert (await api.call("GET", f"/v1/products/{P}/firmware", reader)).status_code == 200
    refused = await upload(api, 3, reader)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    devices_only = (await api.login("dev", scope="devices:write"))["access_token"]
    assert (await put_device(api, {"notes": "fine"}, devices_only)).status_code == 200
    lock = await put_device(api, {"desired_firmware_version": 1}, devices_only)
    assert lock.status_code == 403 and "firmware:write" in lock.json()["error_description"]
    writer = (await api.login("dev", scope="firmware:write"))["access_token"]
    assert (await upload(api, 3, writer)).status_code == 201
    listing = await api.call("GET", f"/v1/products/{P}/firmware", writer)
    assert listing.status_code == 403  # reading needs firmware:read
