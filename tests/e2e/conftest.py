"""A real server on loopback TCP (port chosen by the kernel), real threads, real clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from firmware_sim.identity import DeviceIdentity
from server.app import Server, open_context
from server.config import ServerConfig
from server.logs import now
from server.store import Store
from tests.pg import current_url, opened

from .cli_support import Served, serving


@dataclass
class Live:
    server: Server
    known: list[DeviceIdentity]

    @property
    def port(self) -> int:
        return self.server.device_port

    @property
    def key(self) -> bytes:
        return self.server.ctx.server_key.public

    @property
    def store(self) -> Store:
        return self.server.ctx.store.sync


def another_store(live: Live) -> Store:
    """A second store on the live server's database, as another process would open it."""
    from server.store import SQLiteStore
    from server.store.open import open_store
    from server.store.secrets_key import SecretsKey

    data = live.server.ctx.config.data_dir
    url = current_url()
    if url is None:
        return SQLiteStore(data / "fleetgate.db")
    return opened(open_store(url, data / "fleetgate.db", SecretsKey.default_file(data / "secrets.key")))


async def start_live(tmp_path: Path, nursery: trio.Nursery, devices: int, **config: object) -> Live:
    ctx, _ = open_context(ServerConfig(data_dir=tmp_path / "data", device_port=0, api_port=0, **config))  # type: ignore[arg-type]
    known = [DeviceIdentity.generate() for _ in range(devices)]
    ctx.store.sync.import_devices([(i.device_id_hex, i.key.public) for i in known], now())
    server: Server = await nursery.start(Server(ctx).serve)
    return Live(server, known)


@pytest.fixture
async def live(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Live]:
    running = await start_live(tmp_path, nursery, devices=200)
    yield running
    running.server.shutdown()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path / "data") as server:
        yield server
