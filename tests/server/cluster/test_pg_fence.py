"""The fencing epoch: a leader's singleton writes go through while its epoch is the cluster's, and
are refused once another node has taken the lead (bumped the epoch), even if this node has not
noticed yet."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import trio

from server.cluster import ControlMessage
from server.cluster.bus import NotLeader
from server.cluster.pg import PgBus
from server.store import AsyncStore, Transaction
from server.store.postgres import PostgresStore
from server.store.secrets_key import SecretsKey

pytestmark = pytest.mark.postgres


async def ignore(message: ControlMessage) -> None:
    await trio.lowlevel.checkpoint()


async def test_a_write_fenced_by_a_replaced_leader_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    sync = PostgresStore(pg_dsn, SecretsKey.chosen(b"k" * 32, None, tmp_path / "secrets.key"))
    store = AsyncStore(sync)
    bus = PgBus(pg_dsn, "n1", ignore, leader_poll=0.05)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run_writer)
            await nursery.start(bus.run)
            async with bus.leadership():
                await store.write(Transaction(bus.fence, "fenced"))  # this node leads: it goes through
                with psycopg.connect(pg_dsn, autocommit=True) as other:  # another node took the lead
                    other.execute("UPDATE cluster_leader SET epoch = epoch + 1, node_id = 'n2'")
                with pytest.raises(NotLeader):
                    await store.write(Transaction(bus.fence, "fenced"))
            with pytest.raises(NotLeader):  # and no longer leading at all
                await store.write(Transaction(bus.fence, "fenced"))
            await store.close_writes()
            nursery.cancel_scope.cancel()
    finally:
        sync.close()
