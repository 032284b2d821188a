"""Review: operator transactions read through the *reader* connection inside the writer's batch.

Operations.add_device (like remove_device, update_device, set_owner) checks the device with
`s.get_device` / `s.list_state`, which query SQLiteStore._r, not the writer connection _w. The
writer applies every queued operation in ONE transaction, so an operation does not see what an
earlier operation of the same batch wrote. Two pre-adds of one device into two products that
land in the same batch both pass the "belongs to another product: move=true" check: the second
silently takes the device from the first, and both callers are told "preadded".
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import trio

from protocol.noise import KeyPair
from server.config import ServerConfig
from server.context import ServerContext
from server.link.registry import SessionRegistry
from server.ops.operations import Operations
from server.rules.errors import Conflict
from server.rules.model import Policy
from server.store import AsyncStore, SQLiteStore, Transaction

P, Q = 7301, 7302


async def test_two_preadds_in_one_batch_do_not_both_win(tmp_path: Path, nursery: trio.Nursery) -> None:
    store = SQLiteStore(tmp_path / "fleetgate.db")
    ctx = ServerContext(ServerConfig(data_dir=tmp_path), KeyPair.generate(), AsyncStore(store), SessionRegistry())
    await nursery.start(ctx.store.run_writer)
    ops = Operations(ctx)
    await ops.create_product("user:p", "P", product_id=P, policy=Policy.QUARANTINE)
    await ops.create_product("user:q", "Q", product_id=Q, policy=Policy.QUARANTINE)
    device = secrets.token_hex(12)

    # Hold the writer inside one batch so that both pre-adds queue up behind it (a busy server).
    gate, entered = threading.Event(), threading.Event()

    def hold(_: object) -> None:
        entered.set()
        gate.wait(10)

    nursery.start_soon(ctx.store.write, Transaction(hold, "hold"))
    await trio.to_thread.run_sync(entered.wait, 10)

    outcomes: dict[int, str] = {}

    async def add(product: int) -> None:
        try:
            outcomes[product] = await ops.add_device(f"user:{product}", product, device)
        except Conflict:
            outcomes[product] = "conflict"

    async with trio.open_nursery() as adders:
        adders.start_soon(add, P)
        adders.start_soon(add, Q)
        await trio.sleep(0.2)  # both transactions are queued behind the held batch
        gate.set()

    record = store.get_device(device)
    assert record is not None
    winners = [p for p, outcome in outcomes.items() if outcome == "preadded"]
    # One pre-add wins; the other must be told the device belongs to another product.
    assert sorted(outcomes.values()) == ["conflict", "preadded"], outcomes
    assert winners == [record.product_id]
