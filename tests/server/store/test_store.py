"""The SQLite store: migrations, key import, batched writes with per-op rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.events.log import AppendEvent
from server.link.writes import ConfirmSession, MarkDisconnected
from server.store import SQLiteStore, Store, WriteOp
from server.store.records import EventRecord
from server.store.sqlite.migrations import MIGRATIONS
from server.store.tx import StoreTx
from tests.server.store.conftest import OpenStore

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def MarkConnected(device_id: str, counter: int, firmware_version: int, platform_id: int, at: float) -> ConfirmSession:
    return ConfirmSession(device_id, counter, firmware_version, platform_id, None, at)


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


def test_migrations_apply_once(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "fleetgate.db")
    assert first.schema_version == MIGRATIONS[-1][0]
    first.close()
    again = SQLiteStore(tmp_path / "fleetgate.db")  # reopening applies nothing twice
    assert again.schema_version == MIGRATIONS[-1][0]
    again.close()


def test_import_reports_added_unchanged_and_conflicts(store: Store) -> None:
    first = store.import_devices([("aa" * 12, KEY_A), ("bb" * 12, KEY_A)], now=1.0)
    assert first.added == ["aa" * 12, "bb" * 12] and not first.errors
    second = store.import_devices([("aa" * 12, KEY_A), ("bb" * 12, KEY_B)], now=2.0)
    assert second.unchanged == ["aa" * 12]
    assert second.errors == [("bb" * 12, "already registered with a different public key")]
    record = store.get_device("bb" * 12)
    assert record is not None and record.public_key == KEY_A  # a conflicting import changes nothing


class Explode(WriteOp[None]):
    def apply(self, store: StoreTx) -> None:
        raise RuntimeError("boom")


def test_a_failing_op_rolls_back_alone(store: Store) -> None:
    store.import_devices([("aa" * 12, KEY_A)], now=1.0)
    event = EventRecord("aa" * 12, "temp", b"1", 60, True, 5.0)
    results = store.write_batch([AppendEvent(event), Explode(), MarkConnected("aa" * 12, 9, 3, 6, 5.0)])
    assert isinstance(results[0], int) and isinstance(results[1], RuntimeError) and isinstance(results[2], tuple)
    assert [e.name for e in store.list_events()] == ["temp"]
    record = store.get_device("aa" * 12)
    assert record is not None and record.online and record.last_counter == 9 and record.firmware_version == 3


def test_counter_never_goes_backwards(store: Store) -> None:
    store.import_devices([("aa" * 12, KEY_A)], now=1.0)
    store.write_batch([MarkConnected("aa" * 12, 50, 1, 6, 2.0), MarkConnected("aa" * 12, 40, 1, 6, 3.0)])
    record = store.get_device("aa" * 12)
    assert record is not None and record.last_counter == 50


def test_disconnect_and_reset_online(store: Store) -> None:
    store.import_devices([("aa" * 12, KEY_A), ("bb" * 12, KEY_B)], now=1.0)
    store.write_batch([MarkConnected("aa" * 12, 1, 1, 6, 2.0), MarkConnected("bb" * 12, 1, 1, 6, 2.0)])
    store.write_batch([MarkDisconnected("aa" * 12, 4.0)])
    a = store.get_device("aa" * 12)
    assert a is not None and not a.online and a.last_heard == 4.0
    assert store.reset_online() == 1
    assert not any(d.online for d in store.list_devices())


def test_events_page_by_id_and_device(store: Store) -> None:
    ops: list[WriteOp[Any]] = [
        AppendEvent(EventRecord(d, f"e{i}", b"", 60, True, float(i))) for i, d in enumerate(["aa" * 12, "bb" * 12] * 3)
    ]
    ids = [i for i in store.write_batch(ops) if isinstance(i, int)]
    assert len(ids) == 6 and ids == sorted(ids)
    assert [e.name for e in store.list_events("bb" * 12)] == ["e1", "e3", "e5"]
    first_id = ids[0]
    assert [e.name for e in store.list_events(after_id=first_id, limit=2)] == ["e1", "e2"]


@pytest.mark.parametrize(
    "bad",
    [
        {"heartbeat_interval": 0},
        {"heartbeat_interval": 5000, "idle_timeout": 6000},
        {"idle_timeout": 20000},
        {"heartbeat_interval": 30, "idle_timeout": 30},
        {"rx_max_frame": 100},
    ],
)
def test_server_config_refuses_values_welcome_cannot_carry(tmp_path: Path, bad: dict[str, int]) -> None:
    from server.config import ServerConfig

    with pytest.raises(ValueError):
        ServerConfig(data_dir=tmp_path, **bad)  # type: ignore[arg-type]
