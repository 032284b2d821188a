"""Review: a product's own Denied list lets its team take over another product's device.

Mallory (any user may create a product) pre-adds a device ID and denies it: her product now
"lists" the device. Later the device joins Alice's product. Because the device is on
Mallory's Denied list, `POST /v1/products/{mallory}/devices {"move": true}` skips the check
that the caller may remove it from Alice's product (routes_devices._add_one), and the device
leaves Alice's product. The firmware never asked for Mallory's product.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.api.conftest import Api, start_api


@pytest.fixture
async def api(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Api]:
    running = await start_api(tmp_path, nursery)
    async with running.http:
        yield running
    running.server.shutdown()
    with trio.fail_after(10):
        await running.server.stopped.wait()


async def test_another_products_denied_entry_does_not_let_it_take_a_member_device(api: Api) -> None:
    alice = await api.user("alice")
    mallory = await api.user("mallory")
    # Users get the next free product ID (only server admins choose IDs).
    A = (await api.ok("POST", "/v1/products", alice, json={"name": "Alice"}))["product"]["id"]
    M = (await api.ok("POST", "/v1/products", mallory, json={"name": "Mallory"}))["product"]["id"]
    device = secrets.token_hex(12)

    # Mallory gets there first: pre-add, then deny (it is now on her Denied list, in no product).
    await api.ok("POST", f"/v1/products/{M}/devices", mallory, json={"id": device})
    await api.ok("DELETE", f"/v1/products/{M}/devices/{device}", mallory, json={"deny": True})
    # Alice's product takes the device in (pre-add, or approval after its firmware asked for A).
    await api.ok("POST", f"/v1/products/{A}/devices", alice, json={"id": device})
    await api.ok("PUT", f"/v1/products/{A}/devices/{device}", alice, json={"notes": "alice's"})

    # Mallory holds no permission in A; her team must neither change A's device nor take it.
    edit = await api.call("PUT", f"/v1/products/{M}/devices/{device}", mallory, json={"notes": "mallory was here"})
    take = await api.call("POST", f"/v1/products/{M}/devices", mallory, json={"id": device, "move": True})
    shown = await api.call("GET", f"/v1/products/{A}/devices/{device}", alice)
    assert shown.status_code == 200, "the device was moved out of A by a stranger"
    assert shown.json()["notes"] == "alice's"
    assert edit.status_code >= 400 and take.status_code >= 400


async def test_only_a_server_admin_chooses_a_product_id(api: Api) -> None:
    """Firmware compiles product IDs in: a user picking one that devices report would capture them."""
    user = await api.user("carol")
    chosen = await api.call("POST", "/v1/products", user, json={"name": "Squat", "id": 4242})
    assert chosen.status_code == 403 and chosen.json()["field"] == "id"
    assigned = await api.ok("POST", "/v1/products", user, json={"name": "Mine"})
    assert assigned["product"]["id"] != 4242


async def test_logout_revokes_the_refresh_token_too(api: Api) -> None:
    await api.user("dave")
    tokens = await api.login("dave")
    await api.ok("DELETE", "/v1/access_tokens/current", tokens["access_token"])
    refreshed = await api.http.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
