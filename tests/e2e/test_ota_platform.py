"""A release the device cannot run (another platform in its header) is never offered to it; the
offer it can run names its platform and product; a rollout skips such devices instead of waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from firmware_sim import firmware
from firmware_sim.device import DeviceSettings, SimDevice
from firmware_sim.flash import Flash
from server.ops.operations import Operations
from server.ops.rollouts import RolloutRequest
from server.rules.model import Policy
from server.rules.rollout_model import RolloutSettings, RolloutState, RolloutTarget

from .conftest import Live, start_live
from .test_ota_live import session

ADMIN = "user:admin"
P = 4311
PHOTON, ARGON = 6, 12
IMAGE = firmware.build(P, 2, 20_000, platform_id=ARGON)  # version 2 is built for platform 12 only


@pytest.fixture
async def live(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Live]:
    running = await start_live(tmp_path, nursery, devices=3)
    ops = Operations(running.server.ctx)
    await ops.create_product(ADMIN, "Lamp", product_id=P, policy=Policy.QUARANTINE)
    await ops.firmware.upload(ADMIN, P, IMAGE, version=2, title="lamp-2 (argon)")
    for identity in running.known:
        await ops.add_device(ADMIN, P, identity.device_id_hex)
    yield running
    running.server.shutdown()


def device(live: Live, index: int, platform: int, flash: Flash) -> SimDevice:
    settings = DeviceSettings(product_id=P, firmware_version=flash.installed_version or 1, platform_id=platform)
    return SimDevice(live.known[index], live.key, settings, flash=flash)


async def life(live: Live, index: int, platform: int, flash: Flash, online: trio.Event) -> None:
    """Connected, and connected again on the new version after a "reboot"; until cancelled."""
    while True:
        d = device(live, index, platform, flash)
        stream = await trio.open_tcp_stream("127.0.0.1", live.port)
        try:
            await d.handshake(stream)
            online.set()
            await d.run()
        finally:
            await stream.aclose()


async def test_a_release_for_another_platform_is_not_offered(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    await Operations(live.server.ctx).firmware.release(ADMIN, P, 2, product_default=True, groups=[], intelligent=False)
    photon = Flash()
    await session(live, device(live, 0, PHOTON, photon), seconds=1)
    assert photon.receiver.current_offer is None and photon.bytes_written == 0
    warned = [r for r in caplog.records if r.getMessage() == "ota_incompatible"]
    assert [r.levelname for r in warned] == ["WARNING"]
    assert "platform 12" in str(warned[0].__dict__) and live.known[0].device_id_hex in str(warned[0].__dict__)

    # The platform it is built for receives it, and the offer says what it is for.
    argon = Flash()
    await session(live, device(live, 1, ARGON, argon), seconds=10)
    offer = argon.receiver.current_offer
    assert offer is not None and (offer.platform_id, offer.product_id) == (ARGON, P)
    assert argon.installed_version == 2


async def test_a_rollout_skips_devices_of_another_platform(live: Live) -> None:
    ops = Operations(live.server.ctx)
    flashes = [Flash(), Flash()]
    online = [trio.Event(), trio.Event()]
    async with trio.open_nursery() as fleet:
        for index, platform in enumerate((PHOTON, ARGON)):
            fleet.start_soon(life, live, index, platform, flashes[index], online[index])
        with trio.fail_after(5):
            for event in online:
                await event.wait()
        await trio.sleep(0.3)  # the sessions' READY is in the store: the rollout sees both online
        ids = (live.known[0].device_id_hex, live.known[1].device_id_hex)
        rollout = await ops.rollouts.create(
            ADMIN, P, RolloutRequest(2, RolloutTarget(devices=ids), RolloutSettings(retry_delay=0.1), ())
        )
        with trio.fail_after(15):
            while (await ops.rollouts.get(P, rollout.id)).state is RolloutState.RUNNING:  # noqa: ASYNC110
                await trio.sleep(0.1)
        fleet.cancel_scope.cancel()
    done = await ops.rollouts.get(P, rollout.id)
    rows = {r.device_id: r for r in await ops.rollouts.devices(P, rollout.id)}
    photon, argon = rows[ids[0]], rows[ids[1]]
    assert done.state is RolloutState.COMPLETED, done.state_reason
    assert photon.state.value == "skipped" and "platform 12" in photon.reason and "platform 6" in photon.reason
    assert argon.state.value == "confirmed"
    assert flashes[0].bytes_written == 0 and flashes[1].installed_version == 2
