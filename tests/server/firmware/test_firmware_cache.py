"""The shared image cache: keyed by content hash, bounded in bytes, one read per image."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
import trio
import trio.testing

from server.firmware.cache import ImageCache, ImageMismatch


def image(n: int, fill: int) -> tuple[str, bytes]:
    data = bytes([fill]) * n
    return hashlib.sha256(data).hexdigest(), data


A, B, C = image(400, 1), image(300, 2), image(300, 3)


def test_an_image_is_kept_under_its_hash() -> None:
    cache = ImageCache(1000)
    cache.put(*A)
    assert cache.get(A[0]) == A[1] and cache.get(B[0]) is None
    assert (len(cache), cache.nbytes) == (1, 400)


def test_bytes_that_do_not_hash_to_the_key_are_never_kept() -> None:
    cache = ImageCache(1000)
    with pytest.raises(ImageMismatch):
        cache.put(A[0], B[1])
    assert cache.get(A[0]) is None and len(cache) == 0


def test_the_least_recently_used_go_first_and_the_bound_holds() -> None:
    cache = ImageCache(1000)
    cache.put(*A)
    cache.put(*B)
    assert cache.get(A[0]) is not None  # A is now the most recent: B goes first
    cache.put(*C)  # 400 + 300 + 300 = 1000: all fit
    assert cache.nbytes == 1000
    d = image(300, 4)
    cache.put(*d)  # B, the least recently used, makes room; A, put first, stays
    assert B[0] not in cache and all(k in cache for k in (A[0], C[0], d[0]))
    assert cache.nbytes == 1000
    e = image(600, 5)
    cache.put(*e)  # takes A (400) and C (300): the bound holds
    assert [k in cache for k in (A[0], C[0], d[0], e[0])] == [False, False, True, True]
    assert cache.nbytes == 900 <= cache.max_bytes


def test_an_image_larger_than_the_budget_is_not_kept() -> None:
    cache = ImageCache(100)
    cache.put(*A)
    assert len(cache) == 0 and cache.nbytes == 0


def test_putting_an_image_twice_counts_it_once() -> None:
    cache = ImageCache(1000)
    cache.put(*A)
    cache.put(*A)
    assert (len(cache), cache.nbytes) == (1, 400)


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        ImageCache(-1)


class Disk:
    """A read that counts its calls and can be held until released."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads = 0
        self.gate = trio.Event()

    def read(self) -> bytes:
        self.reads += 1
        trio.from_thread.run(self.gate.wait)
        return self.data


async def load_at_once(cache: ImageCache, disk: Disk, sessions: int) -> list[bytes]:
    """`sessions` ask for the image while its read is held at the gate."""
    got: list[bytes] = []

    async def ask() -> None:
        got.append(await cache.load(A[0], disk.read))

    async with trio.open_nursery() as nursery:
        for _ in range(sessions):
            nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        disk.gate.set()
    return got


async def test_sessions_asking_at_once_share_one_read() -> None:
    cache = ImageCache(1000)
    disk = Disk(A[1])
    assert await load_at_once(cache, disk, 5) == [A[1]] * 5 and disk.reads == 1
    assert await cache.load(A[0], disk.read) == A[1] and disk.reads == 1  # from memory now


async def test_waiters_share_a_read_too_large_to_keep() -> None:
    cache = ImageCache(100)
    disk = Disk(A[1])
    assert await load_at_once(cache, disk, 3) == [A[1]] * 3 and disk.reads == 1 and len(cache) == 0


async def test_a_binary_changed_on_disk_is_refused_not_cached() -> None:
    cache = ImageCache(1000)
    with pytest.raises(ImageMismatch):
        await cache.load(A[0], lambda: B[1])
    assert len(cache) == 0
    assert await cache.load(A[0], lambda: A[1]) == A[1]  # a later good read is kept


async def test_a_failed_read_lets_each_waiter_try_its_own() -> None:
    cache = ImageCache(1000)
    disk = Disk(B[1])  # the wrong bytes: the first read fails
    results: list[bytes | str] = []

    async def ask(read: Callable[[], bytes]) -> None:
        try:
            results.append(await cache.load(A[0], read))
        except ImageMismatch:
            results.append("mismatch")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, disk.read)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, lambda: A[1])  # waits for the first read, then reads for itself
        await trio.testing.wait_all_tasks_blocked()
        disk.gate.set()
    assert results == ["mismatch", A[1]] and cache.get(A[0]) == A[1]
