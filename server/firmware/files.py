"""Firmware binaries as files: atomic writes (node_cache.py's copies), and where binaries lived
before the store kept them, DATA_DIR/firmware/<product>/<version>-<sha256 prefix>.bin (read once
by legacy.py, which moves them into the store).

Paths are built from integers and a hex digest we computed, never from anything a caller
typed. Writes are atomic (a temporary file in the same directory, fsync, rename), so a crash
leaves either the whole binary or none of it under its final name.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
PREFIX_LEN = 16  # 64 bits of the digest: distinct uploads of one version never share a name


def binary_path(data_dir: Path, product_id: int, version: int, sha256: str) -> Path:
    if not (isinstance(product_id, int) and isinstance(version, int) and _SHA256.match(sha256)):
        raise ValueError("firmware paths are built from a product ID, a version and a SHA-256 only")
    return data_dir / "firmware" / str(product_id) / f"{version}-{sha256[:PREFIX_LEN]}.bin"


def write_binary(path: Path, data: bytes) -> None:
    # Owner-only, as the whole data directory (server/data_dir.py); parents=True would ignore the mode.
    for directory in (path.parent.parent, path.parent):
        directory.mkdir(mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # the rename itself survives a power cut


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
