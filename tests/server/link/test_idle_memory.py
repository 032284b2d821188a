"""What an idle authenticated connection keeps alive on the server, over real loopback sockets.

The `hold` benchmark's figure (docs/BENCHMARKS.md) is RSS per connection; this is its in-process
part that the server's own code decides: every allocation still alive whose stack passed through
`server/link/` (the session, its transport and Connection, the stack parked in the read), traced
across a few dozen idle sessions. trio's socket and task objects made by the accept loop are not
counted. Before issue 17's hold work this was 8.6-8.8 KiB per connection (a deque outbox, one
more coroutine frame in the read, the last read's messages kept, trio's socket read three frames
and a context manager deeper); now 6.7-6.9 KiB.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import tracemalloc
from pathlib import Path

import pytest
import trio
import trio.testing

import server.link
from firmware_sim.device import DeviceSettings, connect_device
from server.link.registry import SessionRegistry
from server.link.session import handle_device

from ..harness import start_harness

SESSIONS = 24
BUDGET = 7.5 * 1024  # bytes per idle connection traced under server/link/ (was 8.6-8.8 KiB)
# The package's own path: this test's file is under a tests/server/link/ of its own.
_SERVER_LINK = tracemalloc.Filter(True, str(Path(server.link.__file__).parent / "*"), all_frames=True)


async def test_an_idle_connection_keeps_little_alive(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fleetgate")  # captured log records would be counted
    h = await start_harness(tmp_path, nursery, devices=SESSIONS)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def serve(listener: trio.SocketListener) -> None:
        async with listener:
            while True:
                stream = await listener.accept()
                nursery.start_soon(handle_device, stream, h.ctx)

    nursery.start_soon(serve, listeners[0])
    settings = DeviceSettings(heartbeat=False)  # idle: nothing sent while measured
    async with contextlib.AsyncExitStack() as devices:
        await devices.enter_async_context(
            connect_device(await trio.open_tcp_stream("127.0.0.1", port), h.known[0], h.server_public_key, settings)
        )  # the first one warms what is made once (buffers, caches) before tracing starts
        await _idle(h.ctx.registry, 1)
        gc.collect()
        tracemalloc.start(64)
        try:
            before = tracemalloc.take_snapshot().filter_traces([_SERVER_LINK])
            for identity in h.known[1:]:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await devices.enter_async_context(connect_device(stream, identity, h.server_public_key, settings))
            await _idle(h.ctx.registry, SESSIONS)
            gc.collect()
            after = tracemalloc.take_snapshot().filter_traces([_SERVER_LINK])
        finally:
            tracemalloc.stop()
    nursery.cancel_scope.cancel()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    per_connection = grown / (SESSIONS - 1)
    for stat in after.compare_to(before, "traceback")[:8]:  # shown when it fails: what grew
        print(f"{stat.size_diff / (SESSIONS - 1):.0f} B/conn", *stat.traceback.format()[-4:], sep="\n  ")
    assert per_connection <= BUDGET, f"{per_connection:.0f} bytes per idle connection"


async def _idle(registry: SessionRegistry, n: int) -> None:
    """Every session registered and confirmed, and nothing left to run."""
    await trio.testing.wait_all_tasks_blocked(0.05)
    while len(registry) < n or not all(s.confirmed_in_store for s in registry.sessions()):
        await trio.testing.wait_all_tasks_blocked(0.05)
