"""`fleetgate backup`: an online copy of the database through SQLite's backup API.

The copy is one consistent snapshot (one backup step inside one read transaction; in WAL mode the
running server's writer is not held up), written as a new 0600 file that appears only when
complete. It is the database file only: the secrets key and the server key stay in the data
directory, and are what an operator keeps apart, safely.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

_BUSY_TIMEOUT_S = 10.0


class BackupFailed(Exception):
    """The backup could not be made: one line for the operator."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size: int
    last_event_id: int
    webhooks: int


def backup_database(source: Path, target: Path) -> BackupResult:
    """Copy the database at `source` to the new file `target` (never replaced if it exists)."""
    if target.exists() or target.is_symlink():
        raise BackupFailed(f"{target} exists: give the name of a new file")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BackupFailed(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)  # open's mode is filtered by the umask
        os.close(fd)
        result = _copy(source, partial)
        _fsync(partial)
        try:
            os.link(partial, target)  # unlike rename, never replaces a file made meanwhile
        except FileExistsError:
            raise BackupFailed(f"{target} exists: give the name of a new file") from None
        except OSError as exc:
            raise BackupFailed(f"cannot write {target}: {exc.strerror or exc}") from None
        _fsync(target.parent)
        return BackupResult(target, target.stat().st_size, *result)
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()


def _copy(source: Path, target: Path) -> tuple[int, int]:
    """Back `source` up into `target`; (last event ID, webhooks) of the copy."""
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise BackupFailed(f"cannot open {source}: {exc}") from None
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst)  # all pages in one step: a snapshot, never a mix of two commits
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file (the server sets WAL)
            (verdict,) = dst.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise BackupFailed(f"the copy of {source} fails SQLite's check: {verdict}")
            (last_event,) = dst.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
            (webhooks,) = dst.execute("SELECT COUNT(*) FROM webhooks").fetchone()
            return int(last_event), int(webhooks)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupFailed(f"backup of {source} failed: {exc}") from None
    finally:
        src.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
