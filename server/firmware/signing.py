"""Offline Ed25519 signing of firmware binaries: the signing key stays on the signer's machine.

The signature is detached: 64 bytes over the whole binary, header included, written as 128 hex
characters. Key files are unencrypted PKCS#8 PEM, so `openssl pkeyutl -sign -rawin` makes the
same signature (Ed25519 is deterministic) and teams can keep keys in an HSM or CI secret store.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_LEN = 64
PUBLIC_KEY_LEN = 32


class SigningError(Exception):
    """A key or signature that cannot be used; the message says why, in one line."""


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def write_key(path: Path, key: Ed25519PrivateKey) -> Path:
    """Write the private key (mode 0600 from the start, never over an existing file) and its
    public half as hex to PATH.pub. Returns the .pub path."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningError(f"{path} already exists: refusing to overwrite a signing key") from None
    except OSError as exc:
        raise SigningError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = path.with_name(path.name + ".pub")
    pub.write_text(public_key_hex(key) + "\n")
    return pub


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def sign(data: bytes, key: Ed25519PrivateKey) -> bytes:
    return key.sign(data)


def parse_public_key(text: str) -> bytes:
    """A public key as 64 hex characters (what keygen prints and writes to KEYFILE.pub)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != PUBLIC_KEY_LEN:
        raise SigningError("a public key is 64 hex characters (the contents of KEYFILE.pub)")
    return raw


def parse_signature(data: bytes) -> bytes:
    """A signature as 128 hex characters (surrounding whitespace allowed), or 64 raw bytes."""
    text = data.strip()
    if len(text) == 2 * SIGNATURE_LEN and all(chr(c) in string.hexdigits for c in text):
        return bytes.fromhex(text.decode("ascii"))
    if len(data) == SIGNATURE_LEN:
        return data
    raise SigningError(f"a signature is {2 * SIGNATURE_LEN} hex characters or {SIGNATURE_LEN} raw bytes")


def verify(data: bytes, signature: bytes, public_key: bytes) -> bool:
    """True when `signature` is the Ed25519 signature of exactly `data` by `public_key`."""
    if len(signature) != SIGNATURE_LEN or len(public_key) != PUBLIC_KEY_LEN:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
