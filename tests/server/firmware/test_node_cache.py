"""A node's copies of firmware binaries (server/firmware/node_cache.py), filled from a real store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from server.firmware.cache import ImageMismatch
from server.firmware.node_cache import CACHE_DIR, BinaryCache, BinaryMissing, prune_copies
from server.rules.model import Policy
from server.store import AsyncStore, SQLiteStore
from server.store.records import FirmwareRecord
from server.store.tx import StoreTx

P = 4201
IMAGE = bytes(range(256)) * 40
DIGEST = hashlib.sha256(IMAGE).hexdigest()


class Fetches:
    """The store's read of a binary (in its reader thread), counted, and held until `gate` is set."""

    def __init__(self, store: AsyncStore, *, held: bool = False) -> None:
        self.store = store
        self.count = 0
        self.gate = trio.Event()
        if not held:
            self.gate.set()

    async def __call__(self, sha256: str) -> bytes | None:
        self.count += 1
        await self.gate.wait()
        return await self.store.read(self.store.sync.firmware_blob, sha256)


@pytest.fixture
def store(tmp_path: Path) -> AsyncStore:
    sync = SQLiteStore(tmp_path / "fleetgate.db")

    def upload(tx: StoreTx) -> None:
        tx.insert_product(P, "p", "P", Policy.QUARANTINE, 1.0)
        tx.put_firmware_blob(DIGEST, IMAGE)
        tx.insert_firmware(FirmwareRecord(P, 2, "v2", "", "", len(IMAGE), DIGEST, None, 6, 1.0, "user:a"))

    sync.transact(upload)
    return AsyncStore(sync)


def copy_of(tmp_path: Path, sha256: str = DIGEST) -> Path:
    return tmp_path / "data" / CACHE_DIR / f"{sha256}.bin"


async def test_a_miss_is_fetched_from_the_store_once_then_served_from_the_copy(
    store: AsyncStore, tmp_path: Path
) -> None:
    fetch = Fetches(store)
    cache = BinaryCache(tmp_path / "data", fetch)
    assert await cache.image(DIGEST) == IMAGE and fetch.count == 1
    assert copy_of(tmp_path).read_bytes() == IMAGE
    assert await cache.image(DIGEST) == IMAGE and fetch.count == 1
    # Another process on the same data directory (a restarted node) finds the copy too.
    assert await BinaryCache(tmp_path / "data", fetch).image(DIGEST) == IMAGE and fetch.count == 1


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="one-bit-flipped"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
async def test_a_damaged_copy_is_fetched_again_never_served(
    store: AsyncStore, tmp_path: Path, damage: Callable[[bytes], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    fetch = Fetches(store)
    cache = BinaryCache(tmp_path / "data", fetch)
    await cache.image(DIGEST)
    copy_of(tmp_path).write_bytes(damage(IMAGE))
    assert await cache.image(DIGEST) == IMAGE and fetch.count == 2
    assert copy_of(tmp_path).read_bytes() == IMAGE  # repaired
    assert [r.levelname for r in caplog.records if r.getMessage() == "firmware_cache_corrupt"] == ["WARNING"]


async def test_misses_of_one_binary_at_once_fetch_it_once(store: AsyncStore, tmp_path: Path) -> None:
    fetch = Fetches(store, held=True)
    cache = BinaryCache(tmp_path / "data", fetch)
    got: list[bytes] = []

    async def ask() -> None:
        got.append(await cache.image(DIGEST))

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        fetch.gate.set()
    assert got == [IMAGE] * 6 and fetch.count == 1 and cache.fetches == 1


async def test_a_binary_the_store_lacks_is_missing(store: AsyncStore, tmp_path: Path) -> None:
    cache = BinaryCache(tmp_path / "data", Fetches(store))
    with pytest.raises(BinaryMissing):
        await cache.image("ab" * 32)
    assert not copy_of(tmp_path, "ab" * 32).exists()


async def test_stored_bytes_that_do_not_hash_to_their_key_are_neither_kept_nor_served(tmp_path: Path) -> None:
    async def wrong(sha256: str) -> bytes:
        return IMAGE + b"!"

    cache = BinaryCache(tmp_path / "data", wrong)
    with pytest.raises(ImageMismatch):
        await cache.image(DIGEST)
    assert not copy_of(tmp_path).exists()


async def test_a_failed_fetch_lets_each_waiter_fetch_for_itself(store: AsyncStore, tmp_path: Path) -> None:
    calls: list[str] = []
    gate = trio.Event()

    async def flaky(sha256: str) -> bytes | None:
        calls.append(sha256)
        await gate.wait()
        if len(calls) == 1:
            raise OSError("the database went away")
        return await store.read(store.sync.firmware_blob, sha256)

    cache = BinaryCache(tmp_path / "data", flaky)
    results: list[bytes | str] = []

    async def ask() -> None:
        try:
            results.append(await cache.image(DIGEST))
        except OSError:
            results.append("failed")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask)  # waits for the first fetch, then fetches for itself
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert results == ["failed", IMAGE] and len(calls) == 2


async def test_copies_are_named_by_digest_only(tmp_path: Path) -> None:
    async def never(sha256: str) -> bytes | None:
        raise AssertionError("nothing is fetched for a name that is not a digest")

    cache = BinaryCache(tmp_path / "data", never)
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31):
        with pytest.raises(ValueError):
            await cache.image(bad)


def test_start_up_drops_copies_of_binaries_the_store_no_longer_has(tmp_path: Path) -> None:
    directory = tmp_path / CACHE_DIR
    directory.mkdir()
    for name in (f"{DIGEST}.bin", f"{'ab' * 32}.bin", ".upload-x.tmp"):
        (directory / name).write_bytes(b"x")
    assert prune_copies(tmp_path, keep={DIGEST}) == 2
    assert [p.name for p in directory.iterdir()] == [f"{DIGEST}.bin"]
    assert prune_copies(tmp_path / "nowhere", keep=set()) == 0
