"""Noise_IK_25519_ChaChaPoly_SHA256 (Noise Protocol Framework, revision 34).

Only the IK pattern is implemented: X25519 from libsodium (PyNaCl), ChaCha20-Poly1305 from
`cryptography`. libsodium's X25519 measured ~1.5x faster here (32 against 46 us a DH, 18
against 34 us a key pair, docs/BENCHMARKS.md), and a handshake makes four DHs and a key pair;
`cryptography`'s AEAD is the faster of the two for the frames.

    IK:
      <- s
      ...
      -> e, es, s, ss
      <- e, ee, se

tests/vectors/noise_ik.json holds the cacophony vectors this code reproduces byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base
from nacl.exceptions import CryptoError

from .codes import CloseReason
from .errors import LocalProtocolError, RemoteProtocolError
from .limits import NOISE_MAX_MESSAGE, TAG_LEN

PROTOCOL_NAME = b"Noise_IK_25519_ChaChaPoly_SHA256"
DHLEN = 32
HASHLEN = 32
_MAX_NONCE = 2**64 - 1  # reserved by the spec; reaching it means rekey or stop


def _hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    temp_key = hmac.digest(chaining_key, ikm, "sha256")
    out1 = hmac.digest(temp_key, b"\x01", "sha256")
    out2 = hmac.digest(temp_key, out1 + b"\x02", "sha256")
    return out1, out2


class KeyPair:
    """An X25519 key pair as raw bytes (what the handshake hashes and libsodium takes)."""

    __slots__ = ("private", "public")

    def __init__(self, private: bytes) -> None:
        if len(private) != DHLEN:
            raise LocalProtocolError("X25519 private keys are 32 bytes")
        self.private = private
        self.public = crypto_scalarmult_base(private)  # clamps, as RFC 7748 says

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(os.urandom(DHLEN))  # any 32 random bytes are an X25519 private key

    def dh(self, public: bytes) -> bytes:
        if len(public) != DHLEN:
            raise RemoteProtocolError(
                f"bad X25519 public key: {len(public)} bytes, not {DHLEN}", CloseReason.AUTH_FAILED
            )
        try:
            return crypto_scalarmult(self.private, public)
        except CryptoError as exc:  # libsodium refuses low-order points (an all-zero secret)
            raise RemoteProtocolError("bad X25519 public key: a low-order point", CloseReason.AUTH_FAILED) from exc


class CipherState:
    """A ChaCha20-Poly1305 key with its 64-bit counter nonce.

    The AEAD object is made per call, not kept: each one holds ~2.3 KiB of OpenSSL state, which
    for two ciphers per connection was a fifth of an idle connection's memory, while making one
    costs ~1.3 us, about what sealing a small frame costs. The frames of one batch (a send, a
    read) share one object through `batch()` (docs/BENCHMARKS.md)."""

    __slots__ = ("_key", "nonce")

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key
        self.nonce = 0

    @property
    def has_key(self) -> bool:
        return self._key is not None

    def _next_nonce(self) -> bytes:
        if self.nonce >= _MAX_NONCE:
            raise LocalProtocolError("nonce space exhausted")
        n = self.nonce
        self.nonce = n + 1
        return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self._key is None:
            return plaintext
        return ChaCha20Poly1305(self._key).encrypt(self._next_nonce(), plaintext, ad)

    def encrypt_into(self, ad: bytes, plaintext: bytes | bytearray | memoryview, out: memoryview) -> None:
        """encrypt_with_ad() writing ciphertext and tag into `out` (exactly len(plaintext) + 16
        bytes), so a sender can seal many frames into one buffer without a bytes object each."""
        if self._key is None:
            raise LocalProtocolError("encrypt_into needs a key")
        if len(out) != len(plaintext) + TAG_LEN:  # checked before the nonce is used up
            raise LocalProtocolError(f"out has {len(out)} bytes, not {len(plaintext)} + {TAG_LEN}")
        ChaCha20Poly1305(self._key).encrypt_into(self._next_nonce(), plaintext, ad, out)

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self._key is None:
            return ciphertext
        nonce = self._next_nonce()
        try:
            return ChaCha20Poly1305(self._key).decrypt(nonce, ciphertext, ad)
        except InvalidTag as exc:
            raise RemoteProtocolError("authentication tag mismatch", CloseReason.DECRYPT_FAILED) from exc

    def batch(self) -> CipherBatch:
        """This key's frames of one batch (a send of many frames, or one read's frames) sealed or
        opened with one AEAD object, made at the first frame and dropped with the batch."""
        if self._key is None:
            raise LocalProtocolError("a cipher batch needs a key")
        return CipherBatch(self, self._key)


class CipherBatch:
    """One ChaCha20Poly1305 object for many frames of one CipherState, which keeps the nonce.

    Making the object is ~half of sealing a small frame (an ack: 1.2 against 0.7 us with the
    object made once, docs/BENCHMARKS.md); keeping one per connection would cost its ~2.3 KiB of
    OpenSSL state on every idle link. So a batch makes it at its first frame, and whoever holds
    the batch drops it when the batch is done."""

    __slots__ = ("_aead", "_cipher", "_key")

    def __init__(self, cipher: CipherState, key: bytes) -> None:
        self._cipher = cipher
        self._key = key
        self._aead: ChaCha20Poly1305 | None = None

    def _object(self) -> ChaCha20Poly1305:
        aead = self._aead
        if aead is None:
            aead = self._aead = ChaCha20Poly1305(self._key)
        return aead

    def encrypt_into(self, ad: bytes, plaintext: bytes | bytearray | memoryview, out: memoryview) -> None:
        """CipherState.encrypt_into with the batch's object."""
        if len(out) != len(plaintext) + TAG_LEN:  # checked before the nonce is used up
            raise LocalProtocolError(f"out has {len(out)} bytes, not {len(plaintext)} + {TAG_LEN}")
        self._object().encrypt_into(self._cipher._next_nonce(), plaintext, ad, out)

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """CipherState.decrypt_with_ad with the batch's object."""
        nonce = self._cipher._next_nonce()
        try:
            return self._object().decrypt(nonce, ciphertext, ad)
        except InvalidTag as exc:
            raise RemoteProtocolError("authentication tag mismatch", CloseReason.DECRYPT_FAILED) from exc


class SymmetricState:
    __slots__ = ("cipher", "ck", "h")

    def __init__(self) -> None:
        # The protocol name is exactly HASHLEN bytes, so h starts as the name itself.
        name = PROTOCOL_NAME
        self.h = name.ljust(HASHLEN, b"\x00") if len(name) <= HASHLEN else hashlib.sha256(name).digest()
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = _hkdf2(self.ck, ikm)
        self.cipher = CipherState(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = _hkdf2(self.ck, b"")
        return CipherState(k1), CipherState(k2)


class HandshakeIK:
    """One side of an IK handshake. After both messages, `split()` gives the transport ciphers.

    The initiator must know the responder's static public key in advance (the device pins
    the server key). `ephemeral` is injectable only so the test vectors can be reproduced.
    """

    __slots__ = ("_ss", "_step", "e", "initiator", "re", "rs", "s")

    def __init__(
        self,
        *,
        initiator: bool,
        static: KeyPair,
        prologue: bytes,
        remote_static: bytes | None = None,
        ephemeral: KeyPair | None = None,
    ) -> None:
        if initiator and (remote_static is None or len(remote_static) != DHLEN):
            raise LocalProtocolError("the IK initiator needs the responder's 32-byte static key")
        self.initiator = initiator
        self.s = static
        self.e = ephemeral
        self.rs = remote_static
        self.re: bytes | None = None
        self._ss = SymmetricState()
        self._ss.mix_hash(prologue)
        # Pre-message "<- s": both sides hash the responder's static key.
        self._ss.mix_hash(remote_static if initiator else static.public)  # type: ignore[arg-type]
        self._step = 0

    @property
    def handshake_hash(self) -> bytes:
        return self._ss.h

    def _expect(self, step: int, initiator_writes: bool, writing: bool) -> None:
        if self._step != step or (self.initiator == initiator_writes) != writing:
            raise LocalProtocolError(
                f"handshake message {step + 1} is not ours to {'write' if writing else 'read'} now"
            )
        self._step += 1

    # -> e, es, s, ss
    def write_message_1(self, payload: bytes) -> bytes:
        self._expect(0, True, True)
        assert self.rs is not None
        e = self.e = self.e or KeyPair.generate()
        ss = self._ss
        ss.mix_hash(e.public)
        ss.mix_key(e.dh(self.rs))
        enc_s = ss.encrypt_and_hash(self.s.public)
        ss.mix_key(self.s.dh(self.rs))
        return e.public + enc_s + ss.encrypt_and_hash(payload)

    def read_message_1(self, message: bytes) -> bytes:
        self._expect(0, True, False)
        if len(message) < DHLEN + DHLEN + TAG_LEN + TAG_LEN:
            raise RemoteProtocolError("handshake message 1 is too short", CloseReason.AUTH_FAILED)
        ss = self._ss
        self.re = message[:DHLEN]
        ss.mix_hash(self.re)
        ss.mix_key(self.s.dh(self.re))
        self.rs = ss.decrypt_and_hash(message[DHLEN : DHLEN * 2 + TAG_LEN])
        ss.mix_key(self.s.dh(self.rs))
        return ss.decrypt_and_hash(message[DHLEN * 2 + TAG_LEN :])

    # <- e, ee, se
    def write_message_2(self, payload: bytes) -> bytes:
        self._expect(1, False, True)
        assert self.re is not None and self.rs is not None
        e = self.e = self.e or KeyPair.generate()
        ss = self._ss
        ss.mix_hash(e.public)
        ss.mix_key(e.dh(self.re))
        ss.mix_key(e.dh(self.rs))
        return e.public + ss.encrypt_and_hash(payload)

    def read_message_2(self, message: bytes) -> bytes:
        self._expect(1, False, False)
        if len(message) < DHLEN + TAG_LEN:
            raise RemoteProtocolError("handshake message 2 is too short", CloseReason.AUTH_FAILED)
        assert self.e is not None
        ss = self._ss
        self.re = message[:DHLEN]
        ss.mix_hash(self.re)
        ss.mix_key(self.e.dh(self.re))
        ss.mix_key(self.s.dh(self.re))
        return ss.decrypt_and_hash(message[DHLEN:])

    def split(self) -> tuple[CipherState, CipherState]:
        """Return (send, receive) transport ciphers for this side."""
        if self._step != 2:
            raise LocalProtocolError("handshake is not complete")
        c1, c2 = self._ss.split()
        return (c1, c2) if self.initiator else (c2, c1)


def check_message_size(message: bytes) -> None:
    if len(message) > NOISE_MAX_MESSAGE:
        raise LocalProtocolError("a Noise message is at most 65535 bytes")
