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

A, M = 7101, 7102


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
    await api.ok("POST", "/v1/products", alice, json={"name": "Alice", "id": A})
    await api.ok("POST", "/v1/products", mallory, json={"name": "Mallory", "id": M})
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
