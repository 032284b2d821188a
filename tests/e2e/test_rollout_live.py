"""Rollouts end to end: a real server, simulated devices over loopback TCP that reboot into what they receive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from firmware_sim import firmware
from firmware_sim.flash import Flash
from server.app import Server, open_context
from server.ops.operations import Operations
from server.ops.rollouts import RolloutRequest
from server.rules.model import Policy
from server.rules.rollout_model import ErrorAction, RolloutSettings, RolloutState, RolloutTarget, Strategy
from tests.device_life import device_life

from .conftest import Live, start_live

ADMIN = "user:admin"
P = 4501
IMAGES = {v: firmware.build(P, v, 40_000, seed=v) for v in (1, 2)}


@pytest.fixture
async def live(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Live]:
    running = await start_live(tmp_path, nursery, devices=12)
    ops = Operations(running.server.ctx)
    await ops.create_product(ADMIN, "Lamp", product_id=P, policy=Policy.QUARANTINE)
    for version, image in IMAGES.items():
        await ops.firmware.upload(ADMIN, P, image, version=version, title=f"lamp-{version}")
    await ops.firmware.release(ADMIN, P, 1, product_default=True, groups=[], intelligent=False)
    for identity in running.known:
        await ops.add_device(ADMIN, P, identity.device_id_hex)
    yield running
    running.server.shutdown()


async def wait_state(ops: Operations, rollout_id: int, states: set[RolloutState], seconds: float = 30) -> None:
    with trio.fail_after(seconds):
        while (await ops.rollouts.get(P, rollout_id)).state not in states:  # noqa: ASYNC110 (state is in the store)
            await trio.sleep(0.1)


async def test_a_staged_rollout_updates_every_device_and_leaves_the_version_released(live: Live) -> None:
    ops = Operations(live.server.ctx)
    flashes = {i.device_id_hex: Flash() for i in live.known}
    async with trio.open_nursery() as fleet:
        for identity in live.known:
            fleet.start_soon(device_life, lambda: live.port, live.key, identity, P, flashes[identity.device_id_hex])
        settings = RolloutSettings(strategy=Strategy.STAGED, max_concurrent=3, success_threshold=1.0)
        rollout = await ops.rollouts.create(
            ADMIN, P, RolloutRequest(2, RolloutTarget(product_default=True), settings, ("25%", "50%"))
        )
        assert rollout.settings.stages == (3, 6, 12)
        await wait_state(ops, rollout.id, {RolloutState.COMPLETED})
        fleet.cancel_scope.cancel()
    rows = await ops.rollouts.devices(P, rollout.id)
    assert {r.state.value for r in rows} == {"confirmed"}
    assert all(f.installed_version == 2 for f in flashes.values())
    released = await ops.firmware.get(P, 2)
    assert released.product_default  # the rollout ends as a release: new devices get it too


async def test_refusals_trip_the_error_threshold_and_the_rollout_rolls_back(live: Live) -> None:
    ops = Operations(live.server.ctx)
    flashes = {i.device_id_hex: Flash() for i in live.known}
    # Device order is by ID; the first stage holds 4 devices: two refuse, two update.
    ordered = sorted(live.known, key=lambda i: i.device_id_hex)
    refusers = {i.device_id_hex for i in ordered[2:4]}
    async with trio.open_nursery() as fleet:
        for identity in live.known:
            ota = "refuse" if identity.device_id_hex in refusers else "accept"
            fleet.start_soon(
                partial(device_life, lambda: live.port, live.key, identity, P, flashes[identity.device_id_hex], ota=ota)
            )
        settings = RolloutSettings(
            strategy=Strategy.STAGED, max_concurrent=4, error_threshold=0.5, error_action=ErrorAction.ROLLBACK
        )
        rollout = await ops.rollouts.create(
            ADMIN, P, RolloutRequest(2, RolloutTarget(product_default=True), settings, (4,))
        )
        await wait_state(ops, rollout.id, {RolloutState.ROLLED_BACK})
        fleet.cancel_scope.cancel()
    done = await ops.rollouts.get(P, rollout.id)
    assert done.error_action_fired
    rows = {r.device_id: r for r in await ops.rollouts.devices(P, rollout.id)}
    for device_id, row in rows.items():
        if device_id in refusers:
            assert row.state.value == "failed" and "refused" in row.reason
        elif row.stage == 0:
            # Updated and then rolled back, or still downloading when the threshold fired (aborted).
            assert row.state.value in ("rolled_back", "skipped"), row
            assert flashes[device_id].installed_version in (None, 1)
        else:
            assert row.state.value == "skipped" and flashes[device_id].bytes_written == 0
    assert not (await ops.firmware.get(P, 2)).product_default  # a rolled-back version is not released


async def confirmed(ops: Operations, rollout_id: int) -> int:
    return sum(r.state.value == "confirmed" for r in await ops.rollouts.devices(P, rollout_id))


async def test_a_rollout_survives_a_server_restart(live: Live, tmp_path: Path, nursery: trio.Nursery) -> None:
    """Stop the server mid-rollout and start a new one on the same data directory: it carries on."""
    ops = Operations(live.server.ctx)
    flashes = {i.device_id_hex: Flash() for i in live.known}
    settings = RolloutSettings(strategy=Strategy.STAGED, max_concurrent=2)
    rollout = await ops.rollouts.create(
        ADMIN, P, RolloutRequest(2, RolloutTarget(product_default=True), settings, (4,))
    )
    async with trio.open_nursery() as fleet:
        for identity in live.known:
            fleet.start_soon(device_life, lambda: live.port, live.key, identity, P, flashes[identity.device_id_hex])
        with trio.fail_after(30):
            while await confirmed(ops, rollout.id) < 3:  # noqa: ASYNC110 (the count is in the store)
                await trio.sleep(0.05)
        live.server.shutdown()
        await live.server.stopped.wait()
        ctx, _ = open_context(live.server.ctx.config)
        live.server = await nursery.start(Server(ctx).serve)  # the devices reconnect to the new port
        ops = Operations(live.server.ctx)
        await wait_state(ops, rollout.id, {RolloutState.COMPLETED})
        fleet.cancel_scope.cancel()
    rows = await ops.rollouts.devices(P, rollout.id)
    assert {r.state.value for r in rows} == {"confirmed"} and len(rows) == len(live.known)
    assert all(f.installed_version == 2 for f in flashes.values())
