"""Fixtures shared by the server's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from server.store import AsyncStore, SQLiteStore


@pytest.fixture
async def writer_store(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[AsyncStore]:
    """A fresh SQLite store with its batching writer running (ops applied on the loop)."""
    writes = AsyncStore(SQLiteStore(tmp_path / "fleetgate.db"), inline=True)
    await nursery.start(writes.run_writer)
    yield writes
    await writes.close_writes()
