"""Drill devices against a real in-process server that releases version 2 to the product: they
update and come back on it, fail to boot it, drop and resume, or join late."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from firmware_sim import firmware
from firmware_sim.drill_device import Backoff, DrillDevice, DrillProfile, Endpoint
from server.ops.operations import Operations
from server.rules.model import Policy
from tests.e2e.conftest import Live, start_live

ADMIN = "user:admin"
P = 4401
SIZE = 200_000
# The server loses an OTA_COMPLETE followed at once by GOODBYE (see the drill's report); these
# tests are about the devices, so theirs leave a moment before "rebooting".
REBOOT_DELAY = 0.1


@pytest.fixture
async def live(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Live]:
    running = await start_live(tmp_path, nursery, devices=4)
    ops = Operations(running.server.ctx)
    await ops.create_product(ADMIN, "Drill", product_id=P, policy=Policy.QUARANTINE)
    for version in (1, 2):
        await ops.firmware.upload(ADMIN, P, firmware.build(P, version, SIZE), version=version, title=f"v{version}")
    await ops.firmware.release(ADMIN, P, 2, product_default=True, groups=[], intelligent=False)
    for identity in running.known:
        await ops.add_device(ADMIN, P, identity.device_id_hex)
    yield running
    running.server.shutdown()


def drill_device(live: Live, index: int, profile: DrillProfile) -> DrillDevice:
    return DrillDevice(live.known[index], profile, 1, trio.current_time(), random.Random(index))


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a device-side condition (the caller's fail_after is the limit)."""
    while not condition():  # noqa: ASYNC110 (polling the device's own record)
        await trio.sleep(0.01)


def events(device: DrillDevice) -> list[str]:
    return [event for _, event, _ in device.timeline]


async def run_until(live: Live, device: DrillDevice, condition: Callable[[], bool], started: bool = True) -> None:
    endpoint = Endpoint("127.0.0.1", live.port, live.key, P)
    start = trio.Event()
    if started:
        start.set()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(device.run, endpoint, trio.CapacityLimiter(4), start)
        with trio.fail_after(20):
            await until(condition)
        nursery.cancel_scope.cancel()


async def test_a_healthy_device_updates_and_comes_back_on_the_new_version(live: Live) -> None:
    device = drill_device(live, 0, DrillProfile(reboot_delay=REBOOT_DELAY))
    await run_until(live, device, lambda: device.connects >= 2)
    assert device.version == 2 and device.flash.installed_version == 2
    assert events(device)[:4] == ["power_on", "connected", "offer", "accept"]
    reboot = events(device).index("reboot")
    assert device.timeline[reboot + 1][1:] == ("connected", {"version": 2, "status": "ok"})
    assert device.bytes_by_version == {2: SIZE}


async def test_a_device_whose_boot_fails_comes_back_on_the_old_version(live: Live) -> None:
    device = drill_device(live, 1, DrillProfile(fault="bootfail", reboot_delay=REBOOT_DELAY))
    await run_until(live, device, lambda: device.connects >= 2)
    assert device.version == 1 and device.flash.installed_version is None
    await live.server.ctx.store.flush()
    outcome = live.store.ota_outcome(device.device_id)
    assert outcome is not None and outcome.state == "failed" and "did not take" in outcome.reason


async def test_a_dropped_link_is_resumed_after_a_reconnect(live: Live) -> None:
    device = drill_device(live, 2, DrillProfile(fault="drop", drop_after=SIZE // 2, reboot_delay=REBOOT_DELAY))
    await run_until(live, device, lambda: device.version == 2)
    offsets = [detail["offset"] for _, event, detail in device.timeline if event == "accept"]
    assert offsets[0] == 0 and 0 < int(offsets[1]) < SIZE
    assert "drop" in events(device) and SIZE <= device.bytes_by_version[2] < 2 * SIZE


async def test_a_late_device_waits_for_the_rollout_to_start(live: Live) -> None:
    device = drill_device(live, 3, DrillProfile(late_by=0.01, reboot_delay=REBOOT_DELAY))
    endpoint = Endpoint("127.0.0.1", live.port, live.key, P)
    start = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(device.run, endpoint, trio.CapacityLimiter(1), start)
        await trio.testing.wait_all_tasks_blocked()
        assert device.timeline == []  # still "offline"
        start.set()
        with trio.fail_after(20):
            await device.connected.wait()
        nursery.cancel_scope.cancel()
    assert events(device)[:2] == ["power_on", "connected"]


def test_backoff_doubles_to_its_ceiling_with_jitter_and_resets() -> None:
    backoff = Backoff(random.Random(1))
    waits = [backoff.next() for _ in range(8)]
    ceilings = [0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0, 2.0]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    backoff.reset()
    assert 0.1 <= backoff.next() <= 0.2
