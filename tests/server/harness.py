"""A server context over memory streams: real sessions and real SimDevices, no sockets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import trio
import trio.testing

from firmware_sim.identity import DeviceIdentity
from protocol.noise import KeyPair
from server.config import ServerConfig
from server.context import ServerContext
from server.link.registry import SessionRegistry
from server.link.session import DeviceSession
from server.store import AsyncStore, Store
from server.store.open import open_store
from server.store.secrets_key import SecretsKey
from tests.pg import current_url, opened


@dataclass
class Harness:
    ctx: ServerContext
    nursery: trio.Nursery
    known: list[DeviceIdentity]
    sessions: list[DeviceSession] = field(default_factory=list)

    @property
    def server_public_key(self) -> bytes:
        return self.ctx.server_key.public

    @property
    def store(self) -> Store:
        return self.ctx.store.sync

    def open_stream(self, *, lockstep: bool = False) -> trio.abc.Stream:
        """A client stream whose server end is served by a new DeviceSession."""
        client: trio.abc.Stream
        server: trio.abc.Stream
        if lockstep:
            client, server = trio.testing.lockstep_stream_pair()
        else:
            client, server = trio.testing.memory_stream_pair()
        session = DeviceSession(server, self.ctx)
        self.sessions.append(session)
        self.nursery.start_soon(session.run)
        return client


async def start_harness(tmp_path: Path, nursery: trio.Nursery, devices: int = 3, **config: object) -> Harness:
    # SQLite, or this worker's PostgreSQL database on the PostgreSQL pass (tests/pg.py)
    url = current_url()
    store = open_store(url, tmp_path / "fleetgate.db", SecretsKey.default_file(tmp_path / "secrets.key"))
    if url is not None:
        opened(store)
    known = [DeviceIdentity.generate() for _ in range(devices)]
    store.import_devices([(i.device_id_hex, i.key.public) for i in known], now=0.0)
    ctx = ServerContext(
        ServerConfig(data_dir=tmp_path, **config),  # type: ignore[arg-type]
        KeyPair.generate(),
        AsyncStore(store, inline=True),
        SessionRegistry(),
    )
    await nursery.start(ctx.store.run_writer)
    return Harness(ctx, nursery, known)


async def read_all(stream: trio.abc.Stream) -> bytes:
    """Everything the server sends until it closes the stream."""
    out = bytearray()
    while chunk := await stream.receive_some(65536):
        out += chunk
    return bytes(out)
