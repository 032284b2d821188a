"""Process wiring: one trio.run holds the device listener and the background services.

Shutdown order: stop accepting, ask every session to say goodbye (with a grace deadline),
then let the store writer apply what is queued, then close the database.
"""

from __future__ import annotations

import errno
import logging
import signal
from collections.abc import Callable
from functools import partial

import trio

from protocol.codes import CloseReason

from .config import ServerConfig
from .keys import load_or_create_server_key
from .logs import log_event
from .registry import SessionRegistry
from .session import ServerContext, handle_device
from .store import AsyncStore, SQLiteStore

log = logging.getLogger("fleetgate.app")


def open_context(config: ServerConfig) -> tuple[ServerContext, bool]:
    """Create the data directory, store and server key if needed. Returns (context, key_created)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(config.db_path)
    store.reset_online()
    key, created = load_or_create_server_key(config.key_path, config.pub_path)
    return ServerContext(config, key, AsyncStore(store), SessionRegistry()), created


class Server:
    """A running server. `serve()` runs until `shutdown()` (or SIGINT/SIGTERM via `run_forever`)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.listeners: list[trio.SocketListener] = []
        self._shutdown = trio.Event()
        self.stopped = trio.Event()

    @property
    def device_port(self) -> int:
        sockname = self.listeners[0].socket.getsockname()
        return int(sockname[1])

    def shutdown(self) -> None:
        self._shutdown.set()

    async def serve(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        ctx, cfg = self.ctx, self.ctx.config
        try:
            async with trio.open_nursery() as services:
                await services.start(ctx.store.run_writer)
                async with trio.open_nursery() as sessions:
                    self.listeners = await trio.open_tcp_listeners(cfg.device_port, host=cfg.host, backlog=cfg.backlog)
                    # The accept loop has its own nursery so it can stop before sessions do.
                    async with trio.open_nursery() as acceptor:
                        handler = partial(handle_device, ctx=ctx)
                        acceptor.start_soon(
                            partial(trio.serve_listeners, handler, self.listeners, handler_nursery=sessions)
                        )
                        log_event(
                            log, "listening", host=cfg.host, device_port=self.device_port, data_dir=str(cfg.data_dir)
                        )
                        task_status.started(self)
                        await self._shutdown.wait()
                        acceptor.cancel_scope.cancel()  # serve_listeners closes the listeners
                    await self._drain_sessions()
                    sessions.cancel_scope.cancel()
                await ctx.store.close_writes()
        finally:
            ctx.store.sync.close()
            self.stopped.set()
            log_event(log, "stopped")

    async def _drain_sessions(self) -> None:
        registry = self.ctx.registry
        log_event(log, "shutting_down", sessions=len(registry))
        registry.close_all(CloseReason.SERVER_SHUTDOWN, "server is stopping")
        with trio.move_on_after(self.ctx.config.shutdown_grace):
            await registry.wait_empty()


async def run_forever(config: ServerConfig, on_ready: Callable[[Server], None] | None = None) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    ctx, _ = open_context(config)
    server = Server(ctx)
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await nursery.start(server.serve)
            if on_ready is not None:
                on_ready(server)
            async for signum in signals:
                log_event(log, "signal", signal=signal.Signals(signum).name)
                server.shutdown()
                break


def describe_bind_error(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the port is already in use (is another fleetgate running?)"
    return str(exc)
