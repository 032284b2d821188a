"""Process wiring: one trio.run holds the device listener, the HTTP API and the background services.

Both ports are bound before any task starts, so a port in use is a plain OSError.
Shutdown order: stop accepting devices and API requests, ask every session to say goodbye
(with a grace deadline) while API requests in flight finish, then let the store writer apply
what is queued, then close the database.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from protocol.codes import CloseReason

from .acceptor import serve_devices
from .api import bind_api_socket, create_app, serve_api
from .auth import bootstrap_admin
from .config import ServerConfig
from .gc_tuning import tune_for_serving
from .keys import load_or_create_server_key
from .logs import log_event
from .registry import SessionRegistry
from .rollouts.service import RolloutService
from .session import ServerContext, handle_device
from .store import AsyncStore, SQLiteStore

log = logging.getLogger("fleetgate.app")


@dataclass(frozen=True, slots=True)
class Startup:
    ctx: ServerContext
    key_created: bool
    admin_token_created: Path | None  # first run only: where the admin's bearer token was written


def start_up(config: ServerConfig) -> Startup:
    """Create the data directory, store, server key and first admin as needed."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(config.db_path)
    store.reset_online()
    key, created = load_or_create_server_key(config.key_path, config.pub_path)
    admin_token = bootstrap_admin(store, config.admin_token_path)
    return Startup(ServerContext(config, key, AsyncStore(store), SessionRegistry()), created, admin_token)


def open_context(config: ServerConfig) -> tuple[ServerContext, bool]:
    """`start_up` for callers that need only (context, key_created)."""
    startup = start_up(config)
    return startup.ctx, startup.key_created


class Server:
    """A running server. `serve()` runs until `shutdown()` (or SIGINT/SIGTERM via `run_forever`)."""

    def __init__(self, ctx: ServerContext, *, admin_token_created: Path | None = None) -> None:
        self.ctx = ctx
        self.admin_token_created = admin_token_created  # for `fleetgate serve` to tell where it is
        self.listeners: list[trio.SocketListener] = []
        self._api_port = 0
        self._shutdown = trio.Event()
        self.stopped = trio.Event()

    @property
    def device_port(self) -> int:
        sockname = self.listeners[0].socket.getsockname()
        return int(sockname[1])

    @property
    def api_port(self) -> int:
        """The port the HTTP API listens on (the kernel's choice when configured as 0)."""
        return self._api_port

    def shutdown(self) -> None:
        self._shutdown.set()

    async def serve(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        ctx, cfg = self.ctx, self.ctx.config
        try:
            api_socket = await self._bind(cfg)
            async with trio.open_nursery() as services:
                await services.start(ctx.store.run_writer)
                # Background services stop before the writer, which applies what they queued.
                async with trio.open_nursery() as background:
                    background.start_soon(RolloutService(ctx).run)
                    await background.start(ctx.webhooks.run, ctx)
                    # The API gets its own nursery so it has finished before the writer stops.
                    async with trio.open_nursery() as api:
                        await api.start(
                            partial(
                                serve_api,
                                create_app(ctx),
                                api_socket,
                                grace=cfg.shutdown_grace,
                                shutdown_trigger=self._shutdown.wait,
                            )
                        )
                        async with trio.open_nursery() as sessions:
                            # The accept loop has its own nursery so it can stop before sessions do.
                            async with trio.open_nursery() as acceptor:
                                handler = partial(_handle_device, ctx)
                                acceptor.start_soon(
                                    serve_devices, self.listeners, handler, sessions, cfg.max_handshakes
                                )
                                log_event(
                                    log,
                                    "listening",
                                    host=cfg.host,
                                    device_port=self.device_port,
                                    api_port=self.api_port,
                                    data_dir=str(cfg.data_dir),
                                )
                                task_status.started(self)
                                await self._shutdown.wait()
                                acceptor.cancel_scope.cancel()  # serve_devices closes the listeners
                            await self._drain_sessions()
                            sessions.cancel_scope.cancel()
                    background.cancel_scope.cancel()
                await ctx.store.close_writes()
        finally:
            ctx.store.sync.close()
            self.stopped.set()
            log_event(log, "stopped")

    async def _bind(self, cfg: ServerConfig) -> socket.socket:
        """Both listening sockets, or an OSError and neither."""
        self.listeners = await trio.open_tcp_listeners(cfg.device_port, host=cfg.host, backlog=cfg.backlog)
        try:
            api_socket = bind_api_socket(cfg.host, cfg.api_port)
        except OSError:
            for listener in self.listeners:
                await listener.aclose()
            raise
        self._api_port = int(api_socket.getsockname()[1])
        return api_socket

    async def _drain_sessions(self) -> None:
        registry = self.ctx.registry
        log_event(log, "shutting_down", sessions=len(registry))
        registry.close_all(CloseReason.SERVER_SHUTDOWN, "server is stopping")
        with trio.move_on_after(self.ctx.config.shutdown_grace):
            await registry.wait_empty()


async def _handle_device(ctx: ServerContext, stream: trio.SocketStream, handshake_done: Callable[[], None]) -> None:
    """The acceptor's handler: (stream, release of its handshake slot), with the context bound."""
    await handle_device(stream, ctx, handshake_done)


async def run_forever(config: ServerConfig, on_ready: Callable[[Server], None] | None = None) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    startup = start_up(config)
    server = Server(startup.ctx, admin_token_created=startup.admin_token_created)
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await nursery.start(server.serve)
            tune_for_serving()
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
