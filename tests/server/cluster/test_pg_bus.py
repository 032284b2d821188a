"""PgBus on a real PostgreSQL: two buses stand for two nodes on one database.

A message notified inside a transaction reaches every node once iff it commits, in commit order;
`caught_up` waits for this node's own handling; a listener whose connection is killed reconnects
and resyncs; and exactly one node leads, a new one within seconds of the old one's connection dying,
with a larger fencing epoch.

Until the PostgreSQL store lands, the transaction here is a plain psycopg one with the two things
the bus uses of a StoreTx: `notice` and `after_commit`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import cast

import psycopg
import pytest
import trio

from server.cluster import ControlMessage, OfferFirmware, ReevaluateDevice
from server.cluster.pg import EVENTS, PgBus
from server.store.hooks import CommitHooks
from server.store.tx import StoreTx

pytestmark = pytest.mark.postgres

DEVICE = "ab" * 12


class PgTx(CommitHooks):
    """What the bus needs of a write transaction, on one psycopg connection."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def notice(self, channel: str, payload: str) -> None:
        self.conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    async def write(self, fn: Callable[[StoreTx], None], *, commit: bool = True) -> None:
        def run() -> None:
            self._hooks_begin()
            self.conn.execute("BEGIN")
            fn(cast(StoreTx, self))
            self.conn.execute("COMMIT" if commit else "ROLLBACK")
            self._hooks_end(commit)

        await trio.to_thread.run_sync(run)
        for hook in self.take_committed_hooks():  # as the store's writer service does, on the loop
            hook()


@pytest.fixture
def tx(pg_dsn: str) -> Iterator[PgTx]:
    opened = PgTx(pg_dsn)
    yield opened
    opened.close()


class Node:
    def __init__(self, dsn: str, name: str) -> None:
        self.got: list[ControlMessage] = []
        self.doorbells = 0
        self.resyncs = 0
        self.bus = PgBus(dsn, name, self.handle, on_events=self.ring, resync=self.resync, leader_poll=0.1)

    async def handle(self, message: ControlMessage) -> None:
        await trio.sleep(0.01)  # as a re-decision does: it writes
        self.got.append(message)

    def ring(self) -> None:
        self.doorbells += 1

    async def resync(self) -> None:
        await trio.lowlevel.checkpoint()
        self.resyncs += 1


@asynccontextmanager
async def nodes(dsn: str, count: int) -> AsyncIterator[list[Node]]:
    started = [Node(dsn, f"n{i + 1}") for i in range(count)]
    async with trio.open_nursery() as nursery:
        for node in started:
            await nursery.start(node.bus.run)
        yield started
        nursery.cancel_scope.cancel()


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    with trio.fail_after(within):
        while not condition():  # noqa: ASYNC110 (the nodes' records have no event to wait on)
            await trio.sleep(0.005)


def terminate(dsn: str, pid: int | None) -> None:
    assert pid is not None
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_a_committed_message_reaches_every_node_once_in_commit_order(pg_dsn: str, tx: PgTx) -> None:
    async with nodes(pg_dsn, 2) as (n1, n2):
        sent = [ReevaluateDevice(DEVICE, f"op{i}") for i in range(5)]
        for message in sent:
            await tx.write(lambda s, m=message: n1.bus.notify(s, m))  # type: ignore[misc]
        await tx.write(lambda s: n1.bus.notify(s, ReevaluateDevice(DEVICE, "rolled back")), commit=False)
        await n1.bus.caught_up()
        assert n1.got == sent  # its own messages, handled before caught_up returned
        await wait_for(lambda: len(n2.got) >= len(sent))
        await trio.sleep(0.2)  # nothing more comes: not the rolled-back one, no duplicates
        assert n2.got == sent
        assert n1.got == sent


async def test_a_long_device_list_arrives_whole_in_parts(pg_dsn: str, tx: PgTx) -> None:
    devs = tuple(f"{i:024x}" for i in range(1000))  # about 28 kB of IDs: four payloads
    async with nodes(pg_dsn, 2) as (n1, n2):
        await tx.write(lambda s: n2.bus.notify(s, OfferFirmware(devs, 3)))
        await n2.bus.caught_up()
        assert len(n2.got) > 1
        await wait_for(lambda: len(n1.got) == len(n2.got))
        got = [d for m in n1.got if isinstance(m, OfferFirmware) for d in m.device_ids or ()]
        assert tuple(got) == devs


async def test_caught_up_waits_for_its_own_handling_only(pg_dsn: str, tx: PgTx) -> None:
    async with nodes(pg_dsn, 2) as (n1, n2):
        await n1.bus.caught_up()  # nothing notified: returns at once
        await tx.write(lambda s: n2.bus.notify(s, ReevaluateDevice(DEVICE, "other node")))
        with trio.fail_after(0.05):
            await n1.bus.caught_up()  # another node's message is not this node's to wait for
        await tx.write(lambda s: n1.bus.notify(s, ReevaluateDevice(DEVICE, "mine")))
        await n1.bus.caught_up()
        assert ReevaluateDevice(DEVICE, "mine") in n1.got


async def test_event_doorbells_ring_every_node(pg_dsn: str, tx: PgTx) -> None:
    async with nodes(pg_dsn, 2) as (n1, n2):
        before = (n1.doorbells, n2.doorbells)
        await tx.write(lambda s: s.notice(EVENTS, "41"))
        await wait_for(lambda: n1.doorbells > before[0] and n2.doorbells > before[1])


async def test_a_listener_that_lost_its_connection_reconnects_and_resyncs(pg_dsn: str, tx: PgTx) -> None:
    async with nodes(pg_dsn, 2) as (n1, n2):
        assert n1.resyncs == 0  # the first connect is no resync of sessions
        terminate(pg_dsn, n1.bus.listener.backend_pid)
        # Sent while n1 may not be listening: lost to it, so its caught_up must not hang on it.
        await tx.write(lambda s: n1.bus.notify(s, ReevaluateDevice(DEVICE, "during")))
        await wait_for(lambda: n1.resyncs == 1)
        with trio.fail_after(2):
            await n1.bus.caught_up()
        await tx.write(lambda s: n2.bus.notify(s, ReevaluateDevice(DEVICE, "after")))
        await wait_for(lambda: ReevaluateDevice(DEVICE, "after") in n1.got)
        assert n1.bus.listener.connects == 2


async def test_one_node_leads_and_another_takes_over_when_its_connection_dies(pg_dsn: str) -> None:
    async with nodes(pg_dsn, 2) as (n1, n2):
        leading: list[str] = []
        lost: list[str] = []

        async def lead(node: Node) -> None:
            async with node.bus.leadership():
                leading.append(node.bus.node_id)
                try:
                    await trio.sleep_forever()
                finally:
                    lost.append(node.bus.node_id)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(lead, n1)
            await wait_for(lambda: leading == ["n1"])
            nursery.start_soon(lead, n2)
            await trio.sleep(0.5)
            assert leading == ["n1"]  # one leader at a time
            first = n1.bus.leader.epoch
            assert first is not None

            terminate(pg_dsn, n1.bus.leader.backend_pid)
            start = trio.current_time()
            await wait_for(lambda: leading == ["n1", "n2"], within=3)
            assert trio.current_time() - start < 2  # a new leader within seconds
            await wait_for(lambda: lost == ["n1"])  # the old leader's work was cancelled
            assert n2.bus.leader.epoch == first + 1  # the fencing epoch moved on
            nursery.cancel_scope.cancel()


async def test_caught_up_on_a_bus_that_is_not_running_fails_rather_than_hangs(pg_dsn: str, tx: PgTx) -> None:
    node = Node(pg_dsn, "n1")
    await tx.write(lambda s: node.bus.notify(s, ReevaluateDevice(DEVICE, "nobody listens")))
    with pytest.raises(RuntimeError, match="not running"):
        await node.bus.caught_up()


async def test_the_leader_sweeps_a_node_that_stopped_and_a_swept_node_closes_its_sessions(pg_dsn: str) -> None:
    released: list[str] = []
    swept: list[str] = []

    async def release(node_id: str) -> None:
        await trio.lowlevel.checkpoint()
        released.append(node_id)

    async def ignore(message: ControlMessage) -> None:
        await trio.lowlevel.checkpoint()

    timing = {"leader_poll": 0.05, "beat": 0.05, "stale_after": 0.5}
    leader = PgBus(pg_dsn, "n1", ignore, release_node=release, **timing)  # type: ignore[arg-type]
    doomed = PgBus(pg_dsn, "n2", ignore, **timing)  # type: ignore[arg-type]
    frozen = PgBus(pg_dsn, "n3", ignore, unreachable=lambda: swept.append("n3"), **timing)  # type: ignore[arg-type]

    async def lead() -> None:
        async with leader.leadership():
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(leader.run)
        await nursery.start(frozen.run)
        nursery.start_soon(lead)
        async with trio.open_nursery() as n2:
            await n2.start(doomed.run)
            await trio.sleep(0.3)
            assert released == []  # stamping nodes are alive
            n2.cancel_scope.cancel()  # n2 stops stamping, as a killed node does
        await wait_for(lambda: released == ["n2"], within=5)

        with psycopg.connect(pg_dsn, autocommit=True) as admin:  # n3 swept while it could not stamp
            admin.execute("DELETE FROM cluster_nodes WHERE node_id = 'n3'")
        await wait_for(lambda: swept == ["n3"], within=5)  # it closes the sessions no longer recorded
        assert released == ["n2"]  # and stamps again: alive
        nursery.cancel_scope.cancel()
