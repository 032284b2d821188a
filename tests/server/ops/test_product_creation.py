"""A product and its creator's place on its team are written together, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from server.app import start_up
from server.config import ServerConfig
from server.ops.operations import Operations
from server.rules.model import Policy, Role
from server.store.records import UserRecord
from tests.server.store.conftest import integrity_error


async def test_the_creator_joins_the_team_in_the_creating_transaction(tmp_path: Path, nursery: trio.Nursery) -> None:
    ctx = start_up(ServerConfig(data_dir=tmp_path, device_port=0, api_port=0)).ctx
    await nursery.start(ctx.store.run_writer)
    ops = Operations(ctx)
    alice = await ops.create_user("user:admin", "alice", "correct horse")
    product = await ops.create_product("user:alice", "Lamp", policy=Policy.QUARANTINE, administrator=alice)
    assert ctx.store.sync.role_of(product.id, alice.id) is Role.ADMINISTRATOR

    # A creator the team cannot take (here: no such user) leaves no product behind without its administrator.
    ghost = UserRecord(id=9999, username="ghost", password_hash="", is_admin=False, created_at=0.0)
    with pytest.raises(integrity_error(ctx.store.sync)):
        await ops.create_product("user:ghost", "Orphan", product_id=4999, policy=Policy.QUARANTINE, administrator=ghost)
    assert ctx.store.sync.get_product(4999) is None
    await ctx.store.close_writes()
