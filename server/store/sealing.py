"""Sealing a secret for the database: AEAD under a key the database file does not hold.

A sealed value is text, `fgs1:` and the base64 of a random 12-byte nonce followed by the
ChaCha20-Poly1305 ciphertext and tag. The associated data names where the value belongs
(`webhooks/7/secret`), so a sealed value copied into another row or column does not open.
Pure: no files, no clock; the key comes from `secrets_key.py`.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

PREFIX = "fgs1:"
KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16


class CannotOpen(Exception):
    """A sealed value that this key does not open: another key, another place, or altered."""


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


class Sealer:
    """seal(plaintext, place) and open(sealed, place) under one 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a secrets key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = ChaCha20Poly1305(key)

    def seal(self, plaintext: str, place: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        # surrogatepass: any str the API accepted (JSON may carry lone surrogates) round-trips
        sealed = nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8", "surrogatepass"), _associated(place))
        return PREFIX + base64.b64encode(sealed).decode("ascii")

    def open(self, sealed: str, place: str) -> str:
        if not is_sealed(sealed):
            raise CannotOpen(f"{place}: not a sealed value")
        try:
            raw = base64.b64decode(sealed[len(PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise CannotOpen(f"{place}: sealed value is not base64") from None
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise CannotOpen(f"{place}: sealed value is too short")
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _associated(place))
        except InvalidTag:
            raise CannotOpen(f"{place}: does not open with this secrets key (another key, or altered)") from None
        try:
            return plain.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:  # the tag held, so only a value sealed from bytes that are not text
            raise CannotOpen(f"{place}: sealed value is not text") from None


def _associated(place: str) -> bytes:
    return b"fleetgate sealed v1\x00" + place.encode()
