"""Migration 14: firmware binaries in the store by SHA-256, on both engines."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from server.firmware.legacy import move_legacy_binaries
from server.rules.errors import Conflict
from server.rules.model import Policy
from server.store import SQLiteStore, Store
from server.store.records import FirmwareRecord
from server.store.sqlite.migrations import MIGRATIONS
from server.store.tx import StoreTx
from tests.server.store.conftest import OpenStore

P, OTHER = 4201, 4202
IMAGE = bytes(range(256)) * 300  # 76,800 bytes: beyond a page in either engine
DIGEST = hashlib.sha256(IMAGE).hexdigest()


def firmware(version: int, product: int = P, sha256: str = DIGEST) -> FirmwareRecord:
    return FirmwareRecord(product, version, f"v{version}", "", "fw.bin", len(IMAGE), sha256, None, 6, 1.0, "user:a")


def upload(s: StoreTx, record: FirmwareRecord, image: bytes = IMAGE) -> None:
    """As ops/firmware.py's upload does: the binary, then the version that points at it."""
    s.put_firmware_blob(record.sha256, image)
    s.insert_firmware(record)


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    s = open_store()

    def products(tx: StoreTx) -> None:
        for product in (P, OTHER):
            tx.insert_product(product, f"p{product}", "P", Policy.QUARANTINE, 1.0)

    s.transact(products)
    return s


def test_a_binary_is_stored_once_by_digest_and_read_back_whole(store: Store) -> None:
    assert store.firmware_blob(DIGEST) is None and store.firmware_blob_digests() == set()
    store.transact(lambda s: upload(s, firmware(1)))
    store.transact(lambda s: upload(s, firmware(2)))  # the same bytes again: one row
    store.transact(lambda s: upload(s, firmware(1, OTHER)))
    assert store.firmware_blob(DIGEST) == IMAGE
    assert store.firmware_blob_digests() == {DIGEST}
    assert store.firmware_without_blob() == []


def test_the_binary_goes_with_the_last_version_that_uses_it(store: Store) -> None:
    store.transact(lambda s: upload(s, firmware(1)))
    store.transact(lambda s: upload(s, firmware(3, OTHER)))  # another product, the same bytes
    other = b"another image"
    store.transact(lambda s: upload(s, firmware(2, sha256=hashlib.sha256(other).hexdigest()), other))
    assert len(store.firmware_blob_digests()) == 2

    assert store.transact(lambda s: s.delete_firmware(P, 1))
    assert store.firmware_blob(DIGEST) == IMAGE  # product OTHER's version 3 still uses it
    assert store.transact(lambda s: s.delete_firmware(OTHER, 3))
    assert store.firmware_blob(DIGEST) is None
    assert store.firmware_blob_digests() == {hashlib.sha256(other).hexdigest()}


def test_a_binary_uploaded_with_a_taken_version_is_not_kept(store: Store) -> None:
    store.transact(lambda s: upload(s, firmware(1)))
    other = b"not the first upload"
    with pytest.raises(Conflict):  # the whole op is undone: its binary with it
        store.transact(lambda s: upload(s, firmware(1, sha256=hashlib.sha256(other).hexdigest()), other))
    assert store.firmware_blob_digests() == {DIGEST}


def test_versions_without_a_stored_binary_are_listed(store: Store) -> None:
    """What migration 14 leaves for the start-up step to move in: versions uploaded before it."""
    store.transact(lambda s: s.insert_firmware(firmware(2, sha256="cd" * 32)))
    store.transact(lambda s: upload(s, firmware(1)))
    assert store.firmware_without_blob() == [(P, 2, "cd" * 32)]
    store.transact(lambda s: s.put_firmware_blob("cd" * 32, b"x"))
    assert store.firmware_without_blob() == []


def test_migration_14_on_a_database_with_firmware(tmp_path: Path) -> None:
    """A version 13 database with versions in it: they stay, and no binary is stored for them yet."""
    path = tmp_path / "fleetgate.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, sql in MIGRATIONS:
        if version < 14:
            old.executescript(f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES ({version}, 0);\nCOMMIT;")
    old.execute("INSERT INTO products (id, slug, name, created_at) VALUES (?, 'p', 'P', 0)", (P,))
    old.execute(
        "INSERT INTO firmware (product_id, version, title, size, sha256, platform_id, uploaded_at, uploaded_by)"
        " VALUES (?, 2, 'v2', ?, ?, 6, 0, 'user:admin')",
        (P, len(IMAGE), DIGEST),
    )
    old.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version >= 14
        assert store.firmware_without_blob() == [(P, 2, DIGEST)]
        assert store.transact(lambda s: s.delete_firmware(P, 2))  # the trigger minds a binary never stored
    finally:
        store.close()


def test_start_up_moves_the_old_layouts_files_into_the_store(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Versions uploaded before migration 14 (rows without a stored binary, their files where
    files.py put them, written here by hand): whole files move in and are deleted; a file that
    does not hash to its version's SHA-256 stays and is not stored; a missing one is logged."""
    data_dir = tmp_path / "data"
    corrupt, absent = b"bits flipped on disk", "ef" * 32
    rows = [firmware(1), firmware(2, sha256=hashlib.sha256(corrupt).hexdigest()), firmware(3, sha256=absent)]
    store.transact(lambda s: [s.insert_firmware(record) for record in rows])
    old = [data_dir / "firmware" / str(P) / f"{r.version}-{r.sha256[:16]}.bin" for r in rows]
    old[0].parent.mkdir(parents=True)
    old[0].write_bytes(IMAGE)
    old[1].write_bytes(corrupt[::-1])

    assert move_legacy_binaries(store, data_dir) == 1
    assert store.firmware_blob(DIGEST) == IMAGE and not old[0].exists()
    assert old[1].exists() and [v for (_, v, _) in store.firmware_without_blob()] == [2, 3]
    events = {r.getMessage(): r.levelname for r in caplog.records if r.name == "fleetgate.firmware"}
    assert events == {"firmware_binary_moved": "INFO", "firmware_binary_corrupt": "ERROR",
                      "firmware_binary_missing": "WARNING"}  # fmt: skip
    assert move_legacy_binaries(store, data_dir) == 0  # once moved, nothing to do at the next start
