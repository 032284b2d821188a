"""The bodies and queries Particle's own clients send (particle-api-js, particle-cli), read as
Particle reads them: form-encoded bodies, the `file` upload field, an invite without a role,
and the device list's filters."""

from __future__ import annotations

from typing import Any

import pytest

from firmware_sim import firmware

from .conftest import PASSWORD, Api

P = 4210
IDS = ["aa0000000000000000000001", "bb0000000000000000000002", "cc0000000000000000000003"]


@pytest.fixture
async def product(api: Api) -> dict[str, Any]:
    return await api.product("Kettle", P)


async def test_firmware_upload_takes_the_binary_as_file_too(api: Api, product: dict[str, Any]) -> None:
    data = firmware.build(P, 1, 3000)
    fields = {"version": "1", "title": "first"}
    # particle-api-js's uploadProductFirmware names the part `file`.
    response = await api.call("POST", f"/v1/products/{P}/firmware", data=fields, files={"file": ("firmware.bin", data)})
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 1 and response.json()["name"] == "firmware.bin"
    both = {"file": ("a.bin", data), "binary": ("b.bin", data)}
    twice = await api.call("POST", f"/v1/products/{P}/firmware", data={**fields, "version": "2"}, files=both)
    assert twice.status_code == 400 and twice.json()["field"] == "file"


async def test_customer_from_particles_form(api: Api, product: dict[str, Any]) -> None:
    form = {
        "email": "kim@example.com",
        "password": PASSWORD,
        "grant_type": "client_credentials",
        "client_id": "particle",
        "client_secret": "particle",
    }
    response = await api.call("POST", f"/v1/products/{P}/customers", data=form)
    assert response.status_code == 201, response.text
    assert response.json()["customer"]["username"] == "kim@example.com"
    assert (await api.login("kim@example.com"))["access_token"]
    # JSON keeps working, with Particle's `email` or our `username`.
    by_email = await api.call("POST", f"/v1/products/{P}/customers", json={"email": "lee", "password": PASSWORD})
    assert by_email.status_code == 201, by_email.text
    both = await api.call(
        "POST", f"/v1/products/{P}/customers", json={"email": "x", "username": "y", "password": PASSWORD}
    )
    assert both.status_code == 400 and both.json()["field"] in ("email", "username")
    unknown = await api.call("POST", f"/v1/products/{P}/customers", data={**form, "email": "z", "shoe": "9"})
    assert unknown.status_code == 400 and unknown.json()["field"] == "shoe"
    empty = await api.call("POST", f"/v1/products/{P}/customers")
    assert empty.status_code == 400 and empty.json()["field"] == "body"


async def test_user_from_a_form_with_typed_fields(api: Api) -> None:
    # particle-cli creates users with a form; booleans come as text.
    made = await api.call("POST", "/v1/users", data={"username": "dana", "password": PASSWORD, "admin": "false"})
    assert made.status_code == 201, made.text
    assert made.json()["user"]["admin"] is False
    bad = await api.call("POST", "/v1/users", data={"username": "eve", "password": PASSWORD, "admin": "maybe"})
    assert bad.status_code == 400 and bad.json()["field"] == "admin"
    strict = await api.call("POST", "/v1/users", json={"username": "eve", "password": PASSWORD, "admin": "true"})
    assert strict.status_code == 400 and strict.json()["field"] == "admin"  # JSON stays strict


async def test_invite_without_a_role_is_the_least_privileged(api: Api, product: dict[str, Any]) -> None:
    await api.user("bob")
    await api.user("carol")
    invited = await api.ok("POST", f"/v1/products/{P}/team", json={"username": "bob"})
    assert invited == {"member": {"username": "bob", "role": "view_only"}}
    # A member invited again without a role keeps theirs (no silent demotion).
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "carol", "role": "developer"})
    again = await api.ok("POST", f"/v1/products/{P}/team", json={"username": "carol"})
    assert again["member"]["role"] == "developer"
    team = {m["username"]: m["role"] for m in (await api.ok("GET", f"/v1/products/{P}/team"))["team"]}
    assert team["bob"] == "view_only" and team["carol"] == "developer"


async def _listed(api: Api, **query: Any) -> list[str]:
    body = await api.ok("GET", f"/v1/products/{P}/devices", params=query)
    return [d["id"] for d in body["devices"]]


async def test_device_list_filters(api: Api, product: dict[str, Any]) -> None:
    for device_id in IDS:
        await api.ok("POST", f"/v1/products/{P}/devices", json={"id": device_id})
    await api.ok("POST", f"/v1/products/{P}/groups", json={"name": "beta"})
    await api.ok("POST", f"/v1/products/{P}/groups", json={"name": "eu"})
    await api.ok("PUT", f"/v1/products/{P}/devices/{IDS[1]}", json={"groups": ["beta"], "name": "Hall lamp"})
    await api.ok("PUT", f"/v1/products/{P}/devices/{IDS[2]}", json={"groups": ["eu"], "name": "porch"})

    assert await _listed(api) == IDS
    assert await _listed(api, deviceId=IDS[0]) == [IDS[0]]
    assert await _listed(api, deviceId="BB00") == [IDS[1]]  # partial, any case
    assert await _listed(api, deviceId="%") == []  # LIKE's wildcards are literal
    assert await _listed(api, groups="beta") == [IDS[1]]
    assert await _listed(api, groups="beta,eu") == [IDS[1], IDS[2]]
    assert await _listed(api, groups="nope") == []
    assert await _listed(api, deviceName="LAMP") == [IDS[1]]
    assert await _listed(api, sortAttr="deviceId", sortDir="desc") == IDS[::-1]
    assert await _listed(api, sortAttr="deviceName") == [IDS[1], IDS[2], IDS[0]]  # unnamed last
    filtered = await api.ok("GET", f"/v1/products/{P}/devices", params={"groups": "beta,eu", "per_page": 1})
    assert filtered["meta"]["total_pages"] == 2  # pages count the filtered devices
    bad = await api.call("GET", f"/v1/products/{P}/devices", params={"sortAttr": "colour"})
    assert bad.status_code == 400 and bad.json()["field"] == "sortAttr"
