"""The server's static X25519 key: created on first run, private half readable by owner only."""

from __future__ import annotations

import os
from pathlib import Path

from protocol.noise import KeyPair


def write_private(path: Path, text: str) -> None:
    """Create a file only its owner can read, without a window where it is world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # open's mode is filtered by the umask
    with os.fdopen(fd, "w") as f:
        f.write(text)


def load_or_create_server_key(key_path: Path, pub_path: Path) -> tuple[KeyPair, bool]:
    """Return (key, created). The public half is (re)written to pub_path as hex."""
    created = False
    if key_path.exists():
        text = key_path.read_text().strip()
        try:
            key = KeyPair(bytes.fromhex(text))
        except ValueError as exc:
            raise SystemExit(f"{key_path}: not a 64-hex-character X25519 private key ({exc})") from None
    else:
        key = KeyPair.generate()
        write_private(key_path, key.private.hex() + "\n")
        created = True
    pub_path.unlink(missing_ok=True)
    write_private(pub_path, key.public.hex() + "\n")  # public, but every file in the data directory is 0600
    return key, created
