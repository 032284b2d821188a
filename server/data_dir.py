"""The data directory: owner-only modes, and one server at a time.

It holds the server's private key, the admin token and a database with webhook secrets, so the
directory is 0700 and every file in it 0600 whatever the umask. A directory made by an older
version (0755, 0644) is tightened at start. A lock file held with flock for the life of the
server process keeps a second `fleetgate serve` off the same directory; the kernel drops the
lock when the process dies, so a lock file left by a crash does not block.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from pathlib import Path

from .logs import log_event

log = logging.getLogger("fleetgate.data_dir")

DIR_MODE = 0o700
FILE_MODE = 0o600
LOCK_NAME = "fleetgate.lock"


class DataDirInUse(Exception):
    """Another live process holds the data directory's lock."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"data directory {data_dir} is in use by {holder} (another fleetgate serve?)")
        self.pid = pid


def make_data_dir(data_dir: Path) -> bool:
    """Create the directory (0700) if it is missing; whether it was created. Touches nothing else,
    so a server that is refused the directory's lock has changed nothing in it."""
    if data_dir.exists():
        return False
    data_dir.mkdir(parents=True, mode=DIR_MODE)
    os.chmod(data_dir, DIR_MODE)  # mkdir's mode is filtered by the umask
    return True


def prepare_data_dir(data_dir: Path) -> None:
    """Create the directory (0700), or tighten an existing one and everything in it."""
    if make_data_dir(data_dir):
        return
    tightened = tighten(data_dir)
    if tightened:
        log_event(log, "data_dir_tightened", level=logging.WARNING, data_dir=str(data_dir), paths=tightened)


def tighten(data_dir: Path) -> list[str]:
    """Set 0700 on the directory and its subdirectories and 0600 on its files; the paths changed.
    Symlinks are left alone (not followed); a file that vanishes meanwhile (an upload's temporary
    file) is passed over."""
    changed: list[str] = []
    for root, dirs, files in os.walk(data_dir):
        here = Path(root)
        if _set_mode(here, DIR_MODE):
            changed.append(str(here))
        for name in files:
            path = here / name
            try:
                if stat.S_ISREG(path.lstat().st_mode) and _set_mode(path, FILE_MODE):
                    changed.append(str(path))
            except FileNotFoundError:
                continue
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
    return changed


def _set_mode(path: Path, mode: int) -> bool:
    if stat.S_IMODE(path.lstat().st_mode) == mode:
        return False
    os.chmod(path, mode)
    return True


def create_private_file(path: Path) -> None:
    """Make sure `path` exists with mode 0600 (created empty if absent), independent of the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


class DataDirLock:
    """An exclusive flock on DATA_DIR/fleetgate.lock, holding the owner's PID, until `release()`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirInUse(data_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Drop the lock. The file stays: removing it would race with a server starting now."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
