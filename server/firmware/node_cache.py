"""This node's copies of firmware binaries: DATA_DIR/firmware-cache/<sha256>.bin.

The store holds every binary (`firmware_blobs`, by SHA-256), so any node of a cluster can serve
any version; each node keeps a copy on its own disk and fetches from the store only what it lacks.
A copy is checked against its name whenever it is read: a truncated or altered file is deleted and
fetched again, never served. Copies are written atomically (files.write_binary), and checked before
they are written. Callers asking at once for one binary share one read, and one fetch.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

import trio

from ..logs import log_event
from .cache import ImageMismatch, verified
from .files import write_binary

CACHE_DIR = "firmware-cache"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

log = logging.getLogger("fleetgate.firmware")

# Reads the binary stored under a SHA-256 (None: not stored), off the event loop (AsyncStore.read).
Fetch = Callable[[str], Awaitable[bytes | None]]


class BinaryMissing(Exception):
    """The store has no binary under this SHA-256."""


class _Load:
    """A binary being read or fetched: callers that want it too wait here for its bytes."""

    __slots__ = ("done", "image")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.image: bytes | None = None  # None after the read or fetch failed


class BinaryCache:
    """This node's binaries by SHA-256, in `data_dir`, filled from the store through `fetch`."""

    __slots__ = ("_fetch", "_loading", "directory", "fetches")

    def __init__(self, data_dir: Path, fetch: Fetch) -> None:
        self.directory = data_dir / CACHE_DIR
        self._fetch = fetch
        self._loading: dict[str, _Load] = {}
        self.fetches = 0  # from the store, since start

    def path(self, sha256: str) -> Path:
        """The copy's file. The name is a digest we check, never anything a caller typed."""
        if not _SHA256.match(sha256):
            raise ValueError("binaries are cached under a SHA-256 (64 lowercase hex digits) only")
        return self.directory / f"{sha256}.bin"

    async def image(self, sha256: str) -> bytes:
        """The binary with this SHA-256: this node's copy, or fetched from the store (and kept).
        BinaryMissing when the store has none; ImageMismatch when the store's does not hash to it.
        Callers asking while another's read or fetch of it is under way wait for that one."""
        self.path(sha256)  # ValueError before anything else for a name that is not a digest
        pending = self._loading.get(sha256)
        if pending is None:
            return await self._load(sha256)
        await pending.done.wait()
        if pending.image is None:  # that one failed: try ours (and see its error if it fails too)
            return await self.image(sha256)
        return pending.image

    async def _load(self, sha256: str) -> bytes:
        pending = self._loading[sha256] = _Load()
        try:
            image = await trio.to_thread.run_sync(self._read, sha256)
            if image is None:
                self.fetches += 1
                image = await self._fetch(sha256)
                if image is None:
                    raise BinaryMissing(f"the store has no firmware binary with SHA-256 {sha256}")
                await trio.to_thread.run_sync(self._check_and_write, sha256, image)
            pending.image = image
            return image
        finally:
            del self._loading[sha256]
            pending.done.set()

    def keep(self, sha256: str, image: bytes) -> None:
        """Write a copy now (an upload this node took), unless one is here. In a worker thread."""
        if not self.path(sha256).is_file():
            self._check_and_write(sha256, image)

    def discard(self, sha256: str) -> None:
        """The store no longer has it (its last version was deleted): this node's copy goes too."""
        self.path(sha256).unlink(missing_ok=True)

    def _read(self, sha256: str) -> bytes | None:
        """The copy, if it is here and whole; a copy that does not hash to its name is deleted."""
        path = self.path(sha256)
        try:
            image = path.read_bytes()
        except FileNotFoundError:
            return None
        actual = hashlib.sha256(image).hexdigest()
        if actual == sha256:
            return image
        log_event(log, "firmware_cache_corrupt", logging.WARNING, path=str(path), size=len(image), sha256=actual)
        path.unlink(missing_ok=True)
        return None

    def _check_and_write(self, sha256: str, image: bytes) -> None:
        try:
            verified(sha256, image)
        except ImageMismatch as exc:  # the store's bytes are not this binary: neither kept nor served
            log_event(log, "firmware_blob_corrupt", logging.ERROR, sha256=sha256, size=len(image), error=str(exc))
            raise
        try:
            write_binary(self.path(sha256), image)
        except OSError as exc:  # a full disk costs a fetch next time, not the delivery
            log_event(log, "firmware_cache_write_failed", logging.WARNING, sha256=sha256, error=str(exc))


def prune_copies(data_dir: Path, keep: Collection[str]) -> int:
    """At start: delete this node's copies of binaries the store no longer has (deleted through
    any node), and temporary files a crash left; how many went."""
    directory = data_dir / CACHE_DIR
    if not directory.is_dir():
        return 0
    gone = 0
    for path in directory.iterdir():
        if not path.is_file() or (path.suffix == ".bin" and path.stem in keep):
            continue
        path.unlink(missing_ok=True)
        gone += 1
    return gone
