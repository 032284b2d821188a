"""Firmware images in memory, shared by every session: keyed by SHA-256, bounded in bytes.

Every device offered a release needs the same bytes; reading them from disk once per session
was a whole-image read per device (docs/BENCHMARKS.md, O1). The key is the image's content
hash, and bytes enter the cache only after they hash to that key, so an entry can never serve
another image's bytes (nor a binary that changed on disk after upload).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import trio

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # four of the largest images (16 MiB) a device can receive


class ImageMismatch(Exception):
    """The bytes read for an image do not hash to the SHA-256 it was asked for."""


def verified(sha256: str, image: bytes) -> bytes:
    """`image` if it hashes to `sha256` (lowercase hex); ImageMismatch otherwise."""
    actual = hashlib.sha256(image).hexdigest()
    if actual != sha256:
        raise ImageMismatch(f"image read for sha256 {sha256} hashes to {actual}")
    return image


class _Read:
    """An image being read: sessions that want it too wait here for its bytes."""

    __slots__ = ("done", "image")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.image: bytes | None = None  # None after the read failed


class ImageCache:
    """The most recently used images, at most `max_bytes` of them in total. An image larger
    than the whole budget is handed to its caller but not kept."""

    __slots__ = ("_entries", "_loading", "max_bytes", "nbytes")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.nbytes = 0  # bytes held now, never above max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()  # least recently used first
        self._loading: dict[str, _Read] = {}  # images being read, so each is read once

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._entries

    def get(self, sha256: str) -> bytes | None:
        image = self._entries.get(sha256)
        if image is not None:
            self._entries.move_to_end(sha256)
        return image

    def put(self, sha256: str, image: bytes) -> None:
        """Keep `image` (checked against `sha256` first), evicting the least recently used."""
        self._keep(sha256, verified(sha256, image))

    def _keep(self, sha256: str, image: bytes) -> None:
        if sha256 in self._entries or len(image) > self.max_bytes:
            return
        while self.nbytes + len(image) > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.nbytes -= len(evicted)
        self._entries[sha256] = image
        self.nbytes += len(image)

    async def load(self, sha256: str, read: Callable[[], bytes]) -> bytes:
        """The image with this SHA-256: from memory, or read (in a thread) and verified."""
        return await self.load_from(sha256, lambda: trio.to_thread.run_sync(lambda: verified(sha256, read())))

    async def load_from(self, sha256: str, produce: Callable[[], Awaitable[bytes]]) -> bytes:
        """The image with this SHA-256: from memory, or what `produce` returns, which must have
        checked it against `sha256` (node_cache.BinaryCache.image does). Sessions asking for an
        image already being produced wait for it instead of starting another."""
        image = self.get(sha256)
        if image is not None:
            return image
        pending = self._loading.get(sha256)
        if pending is None:
            return await self._produce(sha256, produce)
        await pending.done.wait()
        if pending.image is None:  # that one failed: try ours (and see its error if it fails too)
            return await self.load_from(sha256, produce)
        return pending.image

    async def _produce(self, sha256: str, produce: Callable[[], Awaitable[bytes]]) -> bytes:
        pending = self._loading[sha256] = _Read()
        try:
            image = await produce()
            self._keep(sha256, image)
            pending.image = image  # also when too large to keep: the waiters share this read
            return image
        finally:
            del self._loading[sha256]
            pending.done.set()
