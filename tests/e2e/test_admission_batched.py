"""HELLOs that arrive together are read in one statement (link/admission_reads.py): end to end,
real server, real sockets, devices of two products with different policies at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from firmware_sim.device import DeviceSettings, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import Privilege, Status
from server.ops.operations import Operations
from server.rules.model import Policy

from .conftest import Live, start_live

ADMIN = "user:admin"
OPEN, CLOSED = 1101, 1102  # auto-approve; quarantine


@pytest.fixture
async def live(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Live]:
    running = await start_live(tmp_path, nursery, devices=8)
    yield running
    running.server.shutdown()


async def test_devices_of_two_policies_at_once_get_each_its_own_decision(live: Live) -> None:
    ops = Operations(live.server.ctx)
    await ops.create_product(ADMIN, "Open", product_id=OPEN, policy=Policy.AUTO_APPROVE)
    await ops.create_product(ADMIN, "Closed", product_id=CLOSED, policy=Policy.QUARANTINE)
    products = [OPEN if i % 2 == 0 else CLOSED for i in range(len(live.known))]
    seen: dict[str, tuple[Status | None, Privilege]] = {}
    streams = [await trio.open_tcp_stream("127.0.0.1", live.port) for _ in live.known]

    async def connect(stream: trio.SocketStream, identity: DeviceIdentity, product: int) -> None:
        async with connect_device(stream, identity, live.key, DeviceSettings(product_id=product)) as dev:
            await dev.ping()  # READY processed: the confirmation is queued
            seen[identity.device_id_hex] = dev.state.status, dev.state.privileges

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:  # every HELLO sent in the same turn of the loop
            for stream, identity, product in zip(streams, live.known, products, strict=True):
                nursery.start_soon(connect, stream, identity, product)
    reads = live.server.ctx.admission_reads
    assert 1 <= reads.statements < len(live.known) and reads.largest >= 2  # read together
    for identity, product in zip(live.known, products, strict=True):
        expected = (Status.OK, Privilege.all()) if product == OPEN else (Status.QUARANTINED, Privilege.NONE)
        assert seen[identity.device_id_hex] == expected, product
