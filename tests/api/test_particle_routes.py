"""Routes particle-cli and particle-api-js call that Fleetgate added for them: editing a
firmware's title and description, and the user-level webhook list."""

from __future__ import annotations

from typing import Any

import pytest

from firmware_sim import firmware

from .conftest import Api

P, Q = 4220, 4221


@pytest.fixture
async def products(api: Api) -> list[dict[str, Any]]:
    return [await api.product("Fan", P), await api.product("Heater", Q)]


async def _upload(api: Api, version: int) -> None:
    data = firmware.build(P, version, 2000)
    fields = {"version": str(version), "title": f"Fan {version}", "description": "as built"}
    await api.ok("POST", f"/v1/products/{P}/firmware", data=fields, files={"binary": ("fan.bin", data)})


async def test_edit_a_firmware_title_and_description(api: Api, products: list[dict[str, Any]]) -> None:
    await _upload(api, 1)
    path = f"/v1/products/{P}/firmware/1"
    edited = await api.ok("PUT", path, json={"title": "Fan one", "description": "quieter"})
    assert (edited["title"], edited["description"], edited["version"]) == ("Fan one", "quieter", 1)
    assert await api.ok("GET", path) == edited
    # A field left out stays; a form works too (Particle takes either).
    assert (await api.ok("PUT", path, data={"description": "quieter still"}))["title"] == "Fan one"
    assert (await api.ok("GET", path))["description"] == "quieter still"
    assert (await api.ok("PUT", path, json={}))["description"] == "quieter still"  # no change: no audit
    assert (await api.ok("PUT", path, json={"title": "Fan one"}))["title"] == "Fan one"
    audit = (await api.ok("GET", f"/v1/products/{P}/audit"))["audit"]
    assert [a["action"] for a in audit if a["action"].startswith("firmware")][-3:] == [
        "firmware_uploaded",
        "firmware_edited",
        "firmware_edited",
    ]

    for body, status, field in [
        ({"title": "  "}, 400, "title"),
        ({"title": "t" * 256}, 400, "title"),
        ({"description": "d" * 4097}, 400, "description"),
        ({"size": 3}, 400, "size"),  # only the title and description can change
    ]:
        response = await api.call("PUT", path, json=body)
        assert response.status_code == status and response.json()["field"] == field, (body, response.text)
    missing = await api.call("PUT", f"/v1/products/{P}/firmware/9", json={"title": "x"})
    assert missing.status_code == 404 and missing.json()["field"] == "version"

    viewer = await api.user("viewer")
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "viewer", "role": "view_only"})
    refused = await api.call("PUT", path, viewer, json={"title": "mine"})
    assert refused.status_code == 403
    assert (await api.ok("GET", path))["title"] == "Fan one"


async def test_user_webhook_list_shows_only_readable_products(api: Api, products: list[dict[str, Any]]) -> None:
    for product, event in ((P, "fan"), (Q, "heat")):
        hook = {"event": event, "url": "https://example.com/in"}
        await api.ok("POST", f"/v1/products/{product}/webhooks", json=hook)
    everything = await api.ok("GET", "/v1/webhooks")  # a server admin: every product
    assert sorted((h["product_id"], h["config"]["event"]) for h in everything) == [(P, "fan"), (Q, "heat")]
    assert all("secret" not in h for h in everything)

    dev = await api.user("dev")
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "dev", "role": "developer"})
    await api.ok("POST", f"/v1/products/{Q}/team", json={"username": "dev", "role": "support"})
    # Support may not read webhooks (their configuration holds credentials): only P's.
    assert [h["product_id"] for h in await api.ok("GET", "/v1/webhooks", dev)] == [P]

    nobody = await api.user("nobody")
    assert await api.ok("GET", "/v1/webhooks", nobody) == []
    narrow = await api.user("narrow", scope="devices:read")
    refused = await api.call("GET", "/v1/webhooks", narrow)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"

    await api.ok("POST", f"/v1/products/{P}/customers", json={"username": "kim", "password": "at-least-8"})
    kim = (await api.login("kim", "at-least-8"))["access_token"]
    assert (await api.call("GET", "/v1/webhooks", kim)).status_code == 403
