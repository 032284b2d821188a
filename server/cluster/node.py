"""A cluster node's identity: its id (given, or made once and kept in the data directory) and the
server key it presents, which must be the same file on every node (devices pin one key)."""

from __future__ import annotations

import uuid
from pathlib import Path

from protocol.noise import KeyPair


class NodeSetupError(Exception):
    """One line for the operator: the node cannot start as configured."""


def node_id_of(given: str | None, path: Path) -> str:
    if given is not None:
        return given
    if path.exists():
        text = path.read_text().strip()
        if text:
            return text
    made = f"node-{uuid.uuid4().hex[:12]}"
    path.write_text(made + "\n")
    path.chmod(0o600)
    return made


def load_shared_server_key(path: Path) -> KeyPair:
    """The cluster's server key from `path`: never created here (each node would make its own)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise NodeSetupError(f"--server-key {path}: {exc.strerror or exc}") from None
    try:
        return KeyPair(bytes.fromhex(text))
    except ValueError:
        raise NodeSetupError(f"--server-key {path}: not a 64-hex-character X25519 private key") from None
