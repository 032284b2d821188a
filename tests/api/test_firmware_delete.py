"""Deleting a firmware version a rollout names: 409 naming the rollout while the rollout still needs
it; once it is finished and holds no device's target, the version goes and the rollout's history stays."""

from __future__ import annotations

from firmware_sim import firmware

from .conftest import Api

P = 4601
DEVICES = [f"{i:02x}" * 12 for i in range(0x20, 0x23)]


async def world(api: Api) -> None:
    await api.product("Lamp", P)
    for device in DEVICES:
        await api.ok("POST", f"/v1/products/{P}/devices", json={"id": device})
    for version in (1, 2):
        files = {"binary": ("fw.bin", firmware.build(P, version, 3000), "application/octet-stream")}
        await api.ok(
            "POST", f"/v1/products/{P}/firmware", data={"version": str(version), "title": f"v{version}"}, files=files
        )


async def test_a_running_rollout_keeps_its_version_with_a_409_naming_it(api: Api) -> None:
    await world(api)
    rollout = (await api.ok("POST", f"/v1/products/{P}/rollouts", json={"version": 2, "product_default": True}))[
        "rollout"
    ]
    refused = await api.call("DELETE", f"/v1/products/{P}/firmware/2")
    assert refused.status_code == 409, refused.text
    assert refused.json()["field"] == "version"
    assert f"rollout {rollout['id']} (running)" in refused.json()["error"]
    assert (await api.ok("GET", f"/v1/products/{P}/firmware/2"))["version"] == 2


async def test_an_aborted_rollout_does_not_pin_its_version_and_keeps_its_history(api: Api) -> None:
    await world(api)
    rollout = (await api.ok("POST", f"/v1/products/{P}/rollouts", json={"version": 2, "product_default": True}))[
        "rollout"
    ]
    await api.ok("POST", f"/v1/products/{P}/rollouts/{rollout['id']}/abort")
    deleted = await api.call("DELETE", f"/v1/products/{P}/firmware/2")
    assert deleted.status_code == 200, deleted.text
    kept = (await api.ok("GET", f"/v1/products/{P}/rollouts/{rollout['id']}"))["rollout"]
    assert kept["state"] == "aborted" and kept["version"] == 2
    devices = await api.ok("GET", f"/v1/products/{P}/rollouts/{rollout['id']}/devices")
    assert len(devices["devices"]) == len(DEVICES)
