"""READY's confirming write is a small op: a handful of indexed reads and row writes, committed on
the event loop in small batches rather than handed to the writer thread and back (issue 17)."""

from __future__ import annotations

from pathlib import Path

import trio

from server.link.writes import ConfirmSession
from server.rules.admission import Decision
from server.store import AsyncStore, SQLiteStore


async def test_a_confirmation_commits_on_the_loop(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fleetgate.db")
    try:
        store.import_devices([("aa" * 12, b"\x01" * 32)], now=1.0)
        writes = AsyncStore(store)
        async with trio.open_nursery() as nursery:
            await nursery.start(writes.run_writer)
            result = await writes.write(ConfirmSession("aa" * 12, 5, 1, 6, None, 2.0))
            assert isinstance(result, tuple) and isinstance(result[0], Decision)
            assert writes.batches_on_loop == 1  # no hop to the writer thread
            await writes.close_writes()
        record = store.get_device("aa" * 12)
        assert record is not None and record.online and record.last_counter == 5
    finally:
        store.close()
