"""Where the secrets key comes from: a file (by default DATA_DIR/secrets.key, made on first start)
or the deployment (FLEETGATE_SECRETS_KEY, FLEETGATE_SECRETS_KEY_FILE, `serve --secrets-key-file`).

The key seals webhook secrets and passwords in the database (`sealing.py`), so it is never kept
in the database file, and a backup of that file does not include it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..logs import log_event
from .sealing import KEY_BYTES

log = logging.getLogger("fleetgate.store")

ENV_KEY = "FLEETGATE_SECRETS_KEY"
ENV_KEY_FILE = "FLEETGATE_SECRETS_KEY_FILE"
FILE_NAME = "secrets.key"


class SecretsKeyError(Exception):
    """The secrets key is missing, malformed, or not the database's: one line for the operator."""


@dataclass(frozen=True, slots=True)
class SecretsKey:
    """A key given outright (`key`), or a file (`path`) that is made on first start when `create`."""

    path: Path | None = None
    key: bytes | None = field(default=None, repr=False)
    create: bool = False

    @classmethod
    def default_file(cls, path: Path) -> SecretsKey:
        """The data directory's own file: created (0600) when the database holds no sealed secrets."""
        return cls(path=path, create=True)

    @classmethod
    def chosen(cls, key: bytes | None, key_file: Path | None, default: Path) -> SecretsKey:
        """What the deployment gave (a key, else a file), else the data directory's own file."""
        if key is not None:
            return cls(key=key)
        if key_file is not None:
            return cls(path=key_file)
        return cls.default_file(default)

    @property
    def where(self) -> str:
        return f"${ENV_KEY}" if self.key is not None else str(self.path)

    def load(self, *, may_create: bool) -> bytes:
        """The key's 32 bytes. A missing default file is created only if `may_create` (the
        database has nothing sealed yet); otherwise every failure is a SecretsKeyError."""
        if self.key is not None:
            return self.key
        assert self.path is not None
        try:
            key = parse_key(self.path.read_text(), str(self.path))
            _warn_if_shared(self.path)
            return key
        except FileNotFoundError:
            if not self.create:
                raise SecretsKeyError(f"secrets key file {self.path} does not exist") from None
            if not may_create:
                raise SecretsKeyError(
                    f"secrets key {self.path} is missing but the database holds secrets sealed with one: put the"
                    f" original {FILE_NAME} back (a new key cannot open them)"
                ) from None
        except UnicodeDecodeError:
            raise SecretsKeyError(f"{self.path}: not a secrets key (not text)") from None
        except OSError as exc:
            raise SecretsKeyError(f"cannot read secrets key {self.path}: {exc.strerror or exc}") from None
        key = os.urandom(KEY_BYTES)
        _write_private(self.path, key.hex() + "\n")
        return key


def parse_key(text: str, where: str) -> bytes:
    """32 bytes written as 64 hex characters or as base64."""
    text = text.strip()
    key: bytes | None = None
    if len(text) == 2 * KEY_BYTES:
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != KEY_BYTES:
        raise SecretsKeyError(f"{where}: not a {KEY_BYTES}-byte key in hex (64 characters) or base64 (44 characters)")
    return key


def from_environment(environ: Mapping[str, str], key_file: Path | None) -> tuple[bytes | None, Path | None]:
    """(key, key file) the deployment gave, each None if not given: `key_file` is `serve
    --secrets-key-file`, which wins over the environment."""
    if key_file is not None:
        return None, key_file
    given, given_file = environ.get(ENV_KEY), environ.get(ENV_KEY_FILE)
    if given and given_file:
        raise SecretsKeyError(f"set {ENV_KEY} or {ENV_KEY_FILE}, not both")
    if given:
        return parse_key(given, f"${ENV_KEY}"), None
    return None, Path(given_file) if given_file else None


def _warn_if_shared(path: Path) -> None:
    """A key others may read is used (a mounted secret is often 0644), but said in the log."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log_event(log, "secrets_key_readable_by_others", level=logging.WARNING, path=str(path), mode=f"{mode:04o}")


def _write_private(path: Path, text: str) -> None:
    """Create a file only its owner can read, with no moment where it is readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # open's mode is filtered by the umask
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
