"""The cluster bus seam, on LocalBus: a message is delivered if and only if its transaction commits, once;
and leadership, under which the server runs its singletons."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
import trio

from protocol.codes import OtaAbortReason
from server.app import Server, start_up
from server.cluster import AbortFirmware, ControlMessage, LocalBus, ReevaluateDevice, WakeRollouts
from server.config import ServerConfig
from server.store import AsyncStore, Transaction
from server.store.tx import StoreTx

DEVICE = "aa" * 12


class Recorder:
    def __init__(self) -> None:
        self.got: list[ControlMessage] = []

    async def handle(self, message: ControlMessage) -> None:
        await trio.lowlevel.checkpoint()  # as a re-decision does: it writes
        self.got.append(message)


def sending(bus: LocalBus, *messages: ControlMessage, fail: bool = False) -> Transaction[None]:
    def fn(s: StoreTx) -> None:
        for message in messages:
            bus.notify(s, message)
        if fail:
            raise RuntimeError("refused")

    return Transaction(fn, "test")


async def test_a_write_that_rolls_back_delivers_nothing(writer_store: AsyncStore) -> None:
    recorder = Recorder()
    bus = LocalBus(recorder.handle)
    with pytest.raises(RuntimeError):
        await writer_store.write(sending(bus, ReevaluateDevice(DEVICE, "user:op"), fail=True))
    await bus.caught_up()
    await writer_store.flush()
    await bus.caught_up()
    assert recorder.got == []


async def test_a_write_that_commits_delivers_once_in_order(writer_store: AsyncStore) -> None:
    recorder = Recorder()
    bus = LocalBus(recorder.handle)
    abort = AbortFirmware((DEVICE,), OtaAbortReason.ROLLOUT_ABORTED, "stopped")
    await writer_store.write(sending(bus, ReevaluateDevice(DEVICE, "user:op"), abort))
    await bus.caught_up()
    assert recorder.got == [ReevaluateDevice(DEVICE, "user:op"), abort]
    await bus.caught_up()
    await writer_store.flush()
    await bus.caught_up()
    assert len(recorder.got) == 2  # never again


async def test_in_one_batch_only_the_committed_op_is_delivered(writer_store: AsyncStore) -> None:
    recorder = Recorder()
    bus = LocalBus(recorder.handle)
    # Queued together, so the writer applies them in one transaction; the failing op alone rolls back.
    await writer_store.submit(sending(bus, ReevaluateDevice("bb" * 12, "user:op"), fail=True))
    await writer_store.submit(sending(bus, WakeRollouts()))
    await writer_store.flush()
    await bus.caught_up()
    assert recorder.got == [WakeRollouts()]


async def test_concurrent_callers_each_return_after_the_delivery_and_it_happens_once(writer_store: AsyncStore) -> None:
    recorder = Recorder()
    bus = LocalBus(recorder.handle)
    await writer_store.write(sending(bus, ReevaluateDevice(DEVICE, "user:op")))
    seen: list[int] = []

    async def catch_up() -> None:
        await bus.caught_up()
        seen.append(len(recorder.got))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(catch_up)
        nursery.start_soon(catch_up)
    assert recorder.got == [ReevaluateDevice(DEVICE, "user:op")]
    assert seen == [1, 1]  # neither returned before it was handled


async def test_local_bus_leads_at_once() -> None:
    bus = LocalBus(Recorder().handle)
    with trio.fail_after(1):
        async with bus.leadership():
            pass


class WatchedBus(LocalBus):
    """LocalBus that records when leadership is entered and left."""

    def __init__(self, inner: LocalBus) -> None:
        super().__init__(inner._handle)
        self.leading = False
        self.was_leading = False

    def leadership(self) -> AbstractAsyncContextManager[None]:
        return self._watched()

    @asynccontextmanager
    async def _watched(self) -> AsyncIterator[None]:
        self.leading = self.was_leading = True
        try:
            yield
        finally:
            self.leading = False


async def test_the_server_runs_its_singletons_while_it_leads(tmp_path: Path, nursery: trio.Nursery) -> None:
    startup = start_up(ServerConfig(data_dir=tmp_path, device_port=0, api_port=0, host="127.0.0.1"))
    ctx = startup.ctx
    assert isinstance(ctx.bus, LocalBus)
    bus = ctx.bus = WatchedBus(ctx.bus)
    server = Server(ctx)
    await nursery.start(server.serve)
    assert bus.leading
    assert ctx.webhooks.tap in ctx.events.taps  # webhook dispatch runs (on the leader only)
    server.shutdown()
    with trio.fail_after(10):
        await server.stopped.wait()
    assert bus.was_leading and not bus.leading
    assert ctx.webhooks.tap not in ctx.events.taps


async def test_operator_actions_reach_sessions_through_the_bus_only_when_they_commit(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    from server.ops.operations import Operations
    from server.rules.errors import NotFound
    from server.rules.model import Policy

    ctx = start_up(ServerConfig(data_dir=tmp_path, device_port=0, api_port=0)).ctx
    await nursery.start(ctx.store.run_writer)
    recorder = Recorder()
    ctx.bus = LocalBus(recorder.handle)
    ops = Operations(ctx)
    await ops.create_product("user:op", "Lamp", product_id=4801, policy=Policy.QUARANTINE)
    assert recorder.got == []
    await ops.add_device("user:op", 4801, DEVICE)
    assert recorder.got == [ReevaluateDevice(DEVICE, "user:op")]  # delivered before the action returned
    with pytest.raises(NotFound):
        await ops.remove_device("user:op", 4801, "bb" * 12, deny=False)  # refused: rolled back
    await ctx.bus.caught_up()
    assert recorder.got == [ReevaluateDevice(DEVICE, "user:op")]
    await ctx.store.close_writes()
