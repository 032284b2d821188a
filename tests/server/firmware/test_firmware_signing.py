"""Offline Ed25519 signing: keys on disk, detached signatures, verification."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from server.firmware import image
from server.firmware.signing import (
    SigningError,
    generate_key,
    load_key,
    parse_public_key,
    parse_signature,
    public_key_hex,
    sign,
    verify,
    write_key,
)

BINARY = image.build(4201, 3, 6, bytes(range(256)) * 40)


def test_sign_and_verify_round_trip(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    pub_file = write_key(key_file, generate_key())
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert pub_file == tmp_path / "signing.pem.pub"
    key = load_key(key_file)
    public = parse_public_key(pub_file.read_text())
    assert public.hex() == public_key_hex(key)
    signature = sign(BINARY, key)
    assert len(signature) == 64 and signature == sign(BINARY, key)  # Ed25519 is deterministic
    assert verify(BINARY, signature, public)


def test_a_tampered_byte_fails_verification() -> None:
    key = generate_key()
    public = bytes.fromhex(public_key_hex(key))
    signature = sign(BINARY, key)
    for position in (0, 17, len(BINARY) // 2, len(BINARY) - 1):
        tampered = bytearray(BINARY)
        tampered[position] ^= 0x01
        assert not verify(bytes(tampered), signature, public)
    assert not verify(BINARY + b"\0", signature, public)
    bad_signature = bytearray(signature)
    bad_signature[5] ^= 0x10
    assert not verify(BINARY, bytes(bad_signature), public)
    other = bytes.fromhex(public_key_hex(generate_key()))
    assert not verify(BINARY, signature, other)
    assert not verify(BINARY, signature[:63], public)


def test_signature_encodings() -> None:
    raw = bytes(range(64))
    assert parse_signature(raw) == raw
    assert parse_signature(raw.hex().encode()) == raw
    assert parse_signature(b"  " + raw.hex().upper().encode() + b"\n") == raw
    for bad in (b"", b"zz" * 64, raw[:63], raw.hex().encode()[:-2]):
        with pytest.raises(SigningError):
            parse_signature(bad)


def test_key_files_are_never_overwritten_and_bad_ones_are_named(tmp_path: Path) -> None:
    key_file = tmp_path / "k.pem"
    write_key(key_file, generate_key())
    before = key_file.read_bytes()
    with pytest.raises(SigningError, match="already exists"):
        write_key(key_file, generate_key())
    assert key_file.read_bytes() == before
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(SigningError, match="not an unencrypted PEM"):
        load_key(junk)
    with pytest.raises(SigningError, match="cannot read"):
        load_key(tmp_path / "missing.pem")
    with pytest.raises(SigningError, match="64 hex"):
        parse_public_key("abcd")


def test_openssl_makes_the_same_signature(tmp_path: Path) -> None:
    """The documented alternative: sign with openssl from the same PEM key."""
    key_file = tmp_path / "k.pem"
    write_key(key_file, generate_key())
    binary = tmp_path / "fw.bin"
    binary.write_bytes(BINARY)
    try:
        result = subprocess.run(
            ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(key_file), "-in", str(binary)],
            capture_output=True,
            timeout=30,
        )
    except FileNotFoundError:
        pytest.skip("openssl is not installed")
    if result.returncode != 0:
        pytest.skip(f"this openssl cannot sign Ed25519: {result.stderr[:200]!r}")
    assert result.stdout == sign(BINARY, load_key(key_file))
