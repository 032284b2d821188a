"""What a release or a rollout would do, asked before doing it: the impacted-devices previews the
console's confirmations show, computed by the same rules that pick targets, changing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api
from .test_rollouts import DEV_BOARD, DEVICES, LOCKED_OLD, LOCKED_SAME, MOVABLE, ROLLOUTS, WORLD, P

RELEASE = f"/v1/products/{P}/firmware/release"


@pytest.fixture
async def world(api: Api) -> Api:
    for method, path, kwargs in WORLD:
        await api.ok(method, path, **kwargs)
    return api


async def viewer(api: Api) -> str:
    token = await api.user("vera")
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "vera", "role": "view_only"})
    return token


async def release_preview(api: Api, token: str | None = None, **body: Any) -> dict[str, Any]:
    answer: dict[str, Any] = await api.ok("POST", f"{RELEASE}/preview", token, json=body)
    return answer


# ---------------------------------------------------------------------- rollouts


async def test_rollout_preview_names_what_create_then_holds(world: Api) -> None:
    body = {"version": 2, "product_default": True, "strategy": "staged", "stages": ["50%"]}
    preview = await world.ok("POST", f"{ROLLOUTS}/preview", json=body)
    # Development devices and devices locked to another version are left out, as create leaves them.
    assert preview == {"devices": 4, "stages": [2, 4], "sample": MOVABLE}
    assert (await world.ok("GET", ROLLOUTS))["rollouts"] == []  # nothing started
    created = (await world.ok("POST", ROLLOUTS, json=body))["rollout"]
    assert (created["target"]["devices"], created["stages"]) == (preview["devices"], preview["stages"])

    # With a rollout running, the preview says what create would: wait for it.
    again = await world.call("POST", f"{ROLLOUTS}/preview", json=body)
    assert again.status_code == 409 and again.json()["field"] == "rollout"


async def test_rollout_preview_of_a_group_with_a_small_sample(world: Api) -> None:
    body = {"version": 2, "groups": ["beta", "bench"]}
    preview = await world.ok("POST", f"{ROLLOUTS}/preview?sample=1", json=body)
    assert preview == {"devices": 2, "stages": [2], "sample": [DEVICES[0]]}


async def test_rollout_preview_refuses_what_create_refuses(world: Api) -> None:
    cases = [
        ({"version": 2}, 400, "target"),
        ({"version": 2, "groups": ["nope"]}, 400, "groups"),
        ({"version": 9, "product_default": True}, 404, "version"),
        ({"version": 1, "devices": [DEV_BOARD]}, 400, "target"),
        ({"version": 2, "product_default": True, "stages": ["5%"]}, 400, "stages"),
    ]
    for body, status, field in cases:
        response = await world.call("POST", f"{ROLLOUTS}/preview", json=body)
        assert (response.status_code, response.json().get("field")) == (status, field), (body, response.text)


async def test_a_viewer_may_preview_but_not_start(world: Api) -> None:
    token = await viewer(world)
    body = {"version": 2, "product_default": True}
    assert (await world.ok("POST", f"{ROLLOUTS}/preview", token, json=body))["devices"] == 4
    assert (await world.call("POST", ROLLOUTS, token, json=body)).status_code == 403
    # LOCKED_SAME is locked to 2 already: the release changes nothing for it.
    assert (await release_preview(world, token, version=2, product_default=True))["devices"] == 3
    assert (await world.call("PUT", RELEASE, token, json={"version": 2, "product_default": True})).status_code == 403


# ---------------------------------------------------------------------- releases


async def test_release_preview_follows_the_target_rule(world: Api) -> None:
    # The product default reaches every member but the development device and the locked ones.
    preview = await release_preview(world, version=3, product_default=True)
    assert preview == {"devices": 3, "sample": [{"id": d, "version": 3} for d in DEVICES[:3]]}
    # A group: its members, still not the development device.
    beta = await release_preview(world, version=2, groups=["beta"])
    assert [d["id"] for d in beta["sample"]] == DEVICES[:2]

    await world.ok("PUT", RELEASE, json={"version": 2, "groups": ["beta"]})
    # Released already: nothing more to update. A default release loses to the group's for its members.
    assert (await release_preview(world, version=2, groups=["beta"]))["devices"] == 0
    assert [d["id"] for d in (await release_preview(world, version=3, product_default=True))["sample"]] == [DEVICES[2]]
    # Releasing 2 to the default instead takes it off the group (a release names exactly its targets):
    # the group's members fall back on the default, version 2 all the same, so only DEVICES[2] moves.
    assert (await release_preview(world, version=2, product_default=True))["sample"] == [
        {"id": DEVICES[2], "version": 2}
    ]
    # Nothing changed on the way.
    listing = await world.ok("GET", f"/v1/products/{P}/firmware")
    assert [(f["version"], f["product_default"], f["groups"]) for f in listing] == [
        (1, False, []),
        (2, False, ["beta"]),
        (3, False, []),
    ]


async def test_release_preview_leaves_out_locked_devices(world: Api) -> None:
    # A lock is the device's target whatever is released: LOCKED_OLD and LOCKED_SAME never appear.
    preview = await release_preview(world, version=1, product_default=True)
    assert preview["devices"] == 3 and LOCKED_OLD not in str(preview) and LOCKED_SAME not in str(preview)
    response = await world.call("POST", f"{RELEASE}/preview?sample=0", json={"version": 1, "product_default": True})
    assert response.json() == {"devices": 3, "sample": []}


async def test_release_preview_refuses_unknown_versions_and_groups(world: Api) -> None:
    for body, status, field in [
        ({"version": 9, "product_default": True}, 404, "version"),
        ({"version": 2, "groups": ["nope"]}, 400, "groups"),
        ({"version": 2, "groups": ["Not A Name"]}, 400, "groups"),
    ]:
        response = await world.call("POST", f"{RELEASE}/preview", json=body)
        assert response.status_code == status and field in response.text, (body, response.text)
