"""The scheduler against the real store: what a finished rollout leaves behind, and restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from firmware_sim import firmware
from server.app import open_context
from server.config import ServerConfig
from server.context import ServerContext
from server.ops.operations import Operations
from server.ops.rollouts import RolloutRequest
from server.rollouts.service import RolloutService
from server.rules.model import Policy
from server.rules.rollout_model import DeviceState, RolloutSettings, RolloutState, RolloutTarget
from server.store import Transaction
from server.store.tx import StoreTx

ADMIN = "user:admin"
P = 4701
DEVICES = [f"{i:024x}" for i in range(1, 4)]


@pytest.fixture
async def ctx(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[ServerContext]:
    context, _ = open_context(ServerConfig(data_dir=tmp_path / "data", device_port=0, api_port=0))
    await nursery.start(context.store.run_writer)
    ops = Operations(context)
    await ops.create_product(ADMIN, "Lamp", product_id=P, policy=Policy.QUARANTINE)
    for version in (2, 3):
        await ops.firmware.upload(ADMIN, P, firmware.build(P, version, 10_000), version=version, title=f"v{version}")
    for device in DEVICES:
        await ops.add_device(ADMIN, P, device)
    yield context
    await context.store.close_writes()


async def confirm_all(ctx: ServerContext, rollout_id: int, version: int) -> None:
    """As if every device had come back running `version`."""

    def tx(s: StoreTx) -> None:
        rows = s.rollout_devices(rollout_id)
        s.update_rollout_devices(
            replace(r, state=DeviceState.CONFIRMED, assigned_version=version, from_version=1) for r in rows
        )

    await ctx.store.write(Transaction(tx))


async def test_a_completed_rollout_clears_what_older_rollouts_held(ctx: ServerContext) -> None:
    ops = Operations(ctx)
    service = RolloutService(ctx)
    # A: version 2 to one device by ID; it completes and keeps that device on 2 (no release covers it).
    a = await ops.rollouts.create(ADMIN, P, RolloutRequest(2, RolloutTarget(devices=(DEVICES[0],)), RolloutSettings()))
    await confirm_all(ctx, a.id, 2)
    await service.advance(a.id, P)
    assert (await ops.rollouts.get(P, a.id)).state is RolloutState.COMPLETED
    assert ctx.store.sync.rollout_assignment(P, DEVICES[0]) == 2
    # B: version 3 to the product default; it completes as a release, and A's old target must not
    # come back to move the device down to 2 again.
    b = await ops.rollouts.create(ADMIN, P, RolloutRequest(3, RolloutTarget(product_default=True), RolloutSettings()))
    await confirm_all(ctx, b.id, 3)
    await service.advance(b.id, P)
    assert (await ops.rollouts.get(P, b.id)).state is RolloutState.COMPLETED
    assert (await ops.firmware.get(P, 3)).product_default
    assert [ctx.store.sync.rollout_assignment(P, d) for d in DEVICES] == [None, None, None]


async def test_a_restart_gives_transfers_in_flight_their_whole_timeout_again(ctx: ServerContext) -> None:
    ops = Operations(ctx)
    rollout = await ops.rollouts.create(
        ADMIN, P, RolloutRequest(2, RolloutTarget(product_default=True), RolloutSettings(device_timeout=60))
    )

    def offered_long_ago(s: StoreTx) -> None:
        rows = s.rollout_devices(rollout.id)
        s.update_rollout_devices(
            replace(r, state=DeviceState.OFFERED, offered_at=1.0, assigned_version=2) for r in rows
        )

    await ctx.store.write(Transaction(offered_long_ago))
    service = RolloutService(ctx)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)  # as at startup, after the server was down for ages
        nursery.cancel_scope.cancel()
    await service.advance_all()  # a tick: nothing has timed out
    rows = await ops.rollouts.devices(P, rollout.id)
    assert [(r.state, r.attempts) for r in rows] == [(DeviceState.OFFERED, 0)] * len(DEVICES)
    assert all(r.offered_at is not None and r.offered_at > 1.0 for r in rows)
