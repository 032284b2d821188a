"""Process wiring: one trio.run holds the device listener, the HTTP API and the background services.

`fleetgate serve` binds both ports first, then claims the data directory (modes, lock), then opens
the store: a port in use or a directory held by another server stops it before anything is created,
with one line saying why (`CannotServe`).
Shutdown order: stop accepting devices and API requests, ask every session to say goodbye
(with a grace deadline) while API requests in flight finish, then let the store writer apply
what is queued, then close the database.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from protocol.codes import CloseReason

from .api import create_app, serve_api
from .cluster import LocalBus
from .cluster.node import NodeSetupError, load_shared_server_key, node_id_of
from .config import ServerConfig
from .console import install_console
from .context import ServerContext
from .data_dir import DataDirInUse, DataDirLock, create_private_file, make_data_dir, prepare_data_dir
from .descriptors import raise_descriptor_limit
from .firmware.legacy import move_legacy_binaries
from .firmware.node_cache import prune_copies
from .gc_tuning import tune_for_serving
from .link.acceptor import AdmissionGate, HandshakeSlot, serve_devices
from .link.keys import load_or_create_server_key
from .link.registry import SessionRegistry
from .link.session import handle_device
from .logs import log_event
from .ops.auth import bootstrap_admin, first_run_password
from .ports import BoundPorts, PortUnavailable, bind_ports, describe_bind_error
from .rollouts.service import RolloutService
from .store import AsyncStore, Store, Transaction
from .store.database import DatabaseUnavailable
from .store.open import open_store
from .store.secrets_key import SecretsKey, SecretsKeyError

log = logging.getLogger("fleetgate.app")


@dataclass(frozen=True, slots=True)
class Startup:
    ctx: ServerContext
    key_created: bool
    admin_token_created: Path | None  # first run only: where the admin's bearer token was written
    lock: DataDirLock | None = None  # held for the server's life when started with exclusive=True
    admin_password: str | None = None  # first run only: the admin's password, to print once


def start_up(config: ServerConfig, *, exclusive: bool = False) -> Startup:
    """Create (or tighten) the data directory, then the store, server key and first admin as needed.
    `exclusive`: first take the directory's lock (DataDirInUse if another server holds it)."""
    make_data_dir(config.data_dir)
    lock = DataDirLock(config.data_dir) if exclusive else None  # before anything in it is touched
    try:
        prepare_data_dir(config.data_dir)
        if config.database_url is None:
            create_private_file(config.db_path)  # 0600 before SQLite opens it; its -wal and -shm take its mode
        store = open_store(config.database_url, config.db_path, secrets_key_of(config))
        node_id = None if config.database_url is None else node_id_of(config.node_id, config.node_id_path)
        if node_id is None:
            store.reset_online()
        else:  # the other nodes' devices are theirs: only this node's earlier sessions are gone
            release_earlier_sessions(store, node_id)
        if config.server_key_file is not None:
            key, created = load_shared_server_key(config.server_key_file), False
        else:
            key, created = load_or_create_server_key(config.key_path, config.pub_path)
        password = first_run_password()
        admin_token = bootstrap_admin(store, config.admin_token_path, password)
        move_legacy_binaries(store, config.data_dir)  # a data directory from before the store kept them
        prune_copies(config.data_dir, keep=store.firmware_blob_digests())  # binaries deleted meanwhile
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    dsn = getattr(store, "dsn", None) if node_id is not None else None
    ctx = ServerContext(config, key, AsyncStore(store), SessionRegistry(), node_id=node_id, cluster_dsn=dsn)
    return Startup(ctx, created, admin_token, lock, password if admin_token is not None else None)


def release_earlier_sessions(store: Store, node_id: str) -> None:
    """A node starting: the sessions it held before (it stopped or died) are gone. Where that write
    fails the node does not start: the other nodes would go on seeing it hold those devices (they
    stay online, and a device coming back here would close itself as replaced). The store is closed
    and the failure raised (DatabaseUnavailable, else NodeSetupError: one line from `fleetgate serve`)."""
    (released,) = store.write_batch([Transaction(lambda tx: tx.release_node_sessions(node_id), "node_start")])
    if isinstance(released, BaseException):
        log_event(log, "node_start_failed", logging.ERROR, node_id=node_id, error=str(released))
        store.close()
        if isinstance(released, DatabaseUnavailable):
            raise released
        reason = str(released).strip().splitlines()[0] if str(released).strip() else type(released).__name__
        raise NodeSetupError(f"cannot release the sessions node {node_id} held before: {reason}") from released
    log_event(log, "node_sessions_released", node_id=node_id, released=released)


def secrets_key_of(config: ServerConfig) -> SecretsKey:
    return SecretsKey.chosen(config.secrets_key, config.secrets_key_file, config.secrets_key_path)


def open_context(config: ServerConfig) -> tuple[ServerContext, bool]:
    """`start_up` for callers that need only (context, key_created)."""
    startup = start_up(config)
    return startup.ctx, startup.key_created


class Server:
    """A running server. `serve()` runs until `shutdown()` (or SIGINT/SIGTERM via `run_forever`)."""

    def __init__(
        self,
        ctx: ServerContext,
        *,
        admin_token_created: Path | None = None,
        ports: BoundPorts | None = None,
        admin_password: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.admin_token_created = admin_token_created  # for `fleetgate serve` to tell where it is
        self.admin_password = admin_password  # first run: for `fleetgate serve` to print, once
        self._ports = ports  # bound by the caller already, or by serve()
        self.listeners: list[trio.SocketListener] = []
        self._api_port = 0
        self._shutdown = trio.Event()
        self.stopped = trio.Event()
        # The device port's handshake slots, their shares per address and what was shed (link/acceptor.py).
        self.admission = AdmissionGate.for_config(ctx.config)
        self.admission.refusing = lambda: bool(ctx.bus.unready())  # a node cut off from its database

    @property
    def device_port(self) -> int:
        sockname = self.listeners[0].socket.getsockname()
        return int(sockname[1])

    @property
    def api_port(self) -> int:
        """The port the HTTP API listens on (the kernel's choice when configured as 0)."""
        return self._api_port

    @property
    def stopping(self) -> bool:
        return self._shutdown.is_set()

    def shutdown(self) -> None:
        self.ctx.health.stopping = True  # readiness fails from now: the load balancer sends nothing more
        self._shutdown.set()

    async def serve(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        ctx, cfg = self.ctx, self.ctx.config
        try:
            ports = self._ports if self._ports is not None else await bind_ports(cfg)
            self._ports = None
            self.listeners, api_socket = ports.listeners, ports.api_socket
            self._api_port = int(api_socket.getsockname()[1])
            async with trio.open_nursery() as services:
                await services.start(ctx.store.run_writer)
                # Background services stop before the writer, which applies what they queued.
                async with trio.open_nursery() as background:
                    await background.start(ctx.bus.run)
                    await background.start(ctx.feed.run)
                    if isinstance(ctx.bus, LocalBus):
                        await background.start(_run_singletons, ctx)  # leads at once: before devices arrive
                    else:
                        background.start_soon(_lead_when_chosen, ctx)
                    # The API gets its own nursery so it has finished before the writer stops.
                    async with trio.open_nursery() as api:
                        await api.start(
                            partial(
                                serve_api,
                                install_console(create_app(ctx)),
                                api_socket,
                                grace=cfg.shutdown_grace,
                                shutdown_trigger=self._shutdown.wait,
                            )
                        )
                        async with trio.open_nursery() as sessions:
                            # The accept loop has its own nursery so it can stop before sessions do.
                            async with trio.open_nursery() as acceptor:
                                handler = partial(_handle_device, ctx)
                                acceptor.start_soon(serve_devices, self.listeners, handler, sessions, self.admission)
                                log_event(
                                    log,
                                    "listening",
                                    host=cfg.host,
                                    device_port=self.device_port,
                                    api_port=self.api_port,
                                    data_dir=str(cfg.data_dir),
                                )
                                ctx.health.listening = True
                                task_status.started(self)
                                await self._shutdown.wait()
                                acceptor.cancel_scope.cancel()  # serve_devices closes the listeners
                            ctx.health.listening = False
                            await self._drain_sessions()
                            sessions.cancel_scope.cancel()
                    background.cancel_scope.cancel()
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


async def _run_singletons(ctx: ServerContext, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """The services one node of a cluster runs, while it leads: the rollout scheduler and webhook dispatch.
    (LocalBus leads at once, so they have started before the API and the device listener open.)"""
    async with ctx.bus.leadership(), trio.open_nursery() as singletons:
        # Supervised (supervisor.py): a failure of either is logged and it restarts; the node serves on.
        singletons.start_soon(ctx.supervisor.supervise, "rollouts", RolloutService(ctx).run)
        await singletons.start(ctx.supervisor.supervise, "webhooks", partial(ctx.webhooks.run, ctx))
        task_status.started()


async def _lead_when_chosen(ctx: ServerContext) -> None:
    """A cluster node: run the singletons whenever this node leads; wait for the lock again if it
    loses it (the bus cancels them then)."""
    while True:
        await _run_singletons(ctx)


def _handle_device(ctx: ServerContext, stream: trio.SocketStream, slot: HandshakeSlot) -> Coroutine[Any, Any, None]:
    """The acceptor's handler: (stream, its handshake slot), with the context bound. Not async:
    it returns the session's coroutine, so a held connection's stack has no frame of its own."""
    return handle_device(stream, ctx, slot)


class CannotServe(Exception):
    """The server could not start: one line for the user (a port, the data directory)."""


async def run_forever(config: ServerConfig, on_ready: Callable[[Server], None] | None = None) -> None:
    """Bind, claim the data directory, then run until SIGINT or SIGTERM and shut down cleanly."""
    before, limit = raise_descriptor_limit()  # logged once serving: a failed start is one line
    ports = await bind_ports(config)
    try:
        startup = start_up(config, exclusive=True)
    except BaseException:
        await ports.aclose()
        raise
    try:
        server = Server(
            startup.ctx, admin_token_created=startup.admin_token_created, ports=ports,
            admin_password=startup.admin_password,
        )  # fmt: skip
        # The receiver stays open until the server has stopped: a second Ctrl-C while it drains
        # (bounded by shutdown_grace) is logged, not a KeyboardInterrupt tearing the shutdown apart.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve)
                tune_for_serving()
                if limit != before:
                    log_event(log, "descriptor_limit", limit=limit, raised_from=before)
                if on_ready is not None:
                    on_ready(server)
                nursery.start_soon(_stop_on_signals, server, signals)
                await server.stopped.wait()
                nursery.cancel_scope.cancel()
    finally:
        if startup.lock is not None:
            startup.lock.release()


async def _stop_on_signals(server: Server, signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        log_event(log, "signal", signal=signal.Signals(signum).name, already_stopping=server.stopping)
        server.shutdown()


def serve_until_stopped(config: ServerConfig, on_ready: Callable[[Server], None] | None = None) -> None:
    """`fleetgate serve`: run_forever in its own trio.run; a failure to start is CannotServe, never
    an exception group or a traceback."""
    started: list[Server] = []

    def ready(server: Server) -> None:
        started.append(server)
        if on_ready is not None:
            on_ready(server)

    try:
        trio.run(run_forever, config, ready)
    except KeyboardInterrupt:
        # A Ctrl-C that came as the server finished stopping: trio hands an unconsumed signal
        # back when its receiver closes. The shutdown it interrupted had already completed.
        if started and started[0].stopped.is_set():
            return
        raise
    except BaseException as exc:
        reason = None if started else startup_failure(exc)  # once serving, a failure keeps its traceback
        if reason is None:
            raise
        raise CannotServe(reason) from None


_STARTUP_FAILURES = (PortUnavailable, DataDirInUse, SecretsKeyError, DatabaseUnavailable, NodeSetupError)


def startup_failure(exc: BaseException) -> str | None:
    """One line for a server that could not start, also when a nursery wrapped the cause in an
    exception group; None for anything else (a failure while serving keeps its traceback)."""
    if isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0] if len(exc.exceptions) == 1 else None
        return (
            startup_failure(inner)
            if isinstance(
                inner,
                PortUnavailable
                | DataDirInUse
                | SecretsKeyError
                | DatabaseUnavailable
                | NodeSetupError
                | BaseExceptionGroup,
            )
            else None
        )
    if isinstance(exc, _STARTUP_FAILURES):
        return str(exc)
    if isinstance(exc, OSError):  # raised before serving: the data directory could not be made or opened
        where = f" {exc.filename}:" if exc.filename else ""
        return f"cannot start:{where} {exc.strerror or exc}"
    return None


__all__ = [
    "CannotServe",
    "Server",
    "Startup",
    "describe_bind_error",
    "open_context",
    "release_earlier_sessions",
    "run_forever",
    "secrets_key_of",
    "serve_until_stopped",
    "start_up",
    "startup_failure",
]
