"""Binaries uploaded before the store kept them (migration 14) are files in the data directory of
the node that took them (files.py's layout). At start, each one a version still points at moves
into the store: read, checked against its SHA-256, stored in a transaction of its own, and then
deleted. A file that does not hash to its version's SHA-256 stays where it is, and is not stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from functools import partial
from pathlib import Path
from typing import Any

from ..logs import log_event
from ..store import Store
from ..store.tx import StoreTx
from .files import binary_path

log = logging.getLogger("fleetgate.firmware")


def move_legacy_binaries(store: Store, data_dir: Path) -> int:
    """Move this data directory's binaries of versions the store has no binary for; how many moved."""
    moved = 0
    for product_id, version, sha256 in store.firmware_without_blob():
        fields: dict[str, Any] = {"product_id": product_id, "version": version, "sha256": sha256}
        try:
            path = binary_path(data_dir, product_id, version, sha256)
            image = path.read_bytes()
        except (ValueError, FileNotFoundError):  # not a digest files.py named, or not this node's upload
            log_event(log, "firmware_binary_missing", logging.WARNING, **fields)
            continue
        if hashlib.sha256(image).hexdigest() != sha256:
            log_event(log, "firmware_binary_corrupt", logging.ERROR, path=str(path), **fields)
            continue
        store.transact(partial(_put, sha256=sha256, image=image))
        path.unlink(missing_ok=True)
        moved += 1
        log_event(log, "firmware_binary_moved", size=len(image), **fields)
    _remove_empty(data_dir / "firmware")
    return moved


def _put(tx: StoreTx, sha256: str, image: bytes) -> None:
    tx.put_firmware_blob(sha256, image)


def _remove_empty(root: Path) -> None:
    """The old layout's directories once nothing is left in them."""
    if not root.is_dir():
        return
    for product_dir in root.iterdir():
        if product_dir.is_dir():
            with contextlib.suppress(OSError):  # not empty: a file we did not move stays
                product_dir.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()
