"""Synthetic firmware binaries for `fleetsim firmware build`, written from docs/FIRMWARE.md.

The body imitates a real image closely enough for transfer and storage tests: stretches of
incompressible "code", runs of 0xFF (erased flash between sections) and readable strings, in a
layout fixed by the seed, so the same arguments always give the same bytes.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

MAGIC = b"FGFW"
HEADER_VERSION = 1
HEADER_SIZE = 32
_BLOCK = 4096


def header(product_id: int, version: int, platform_id: int, body: bytes) -> bytes:
    """The 32-byte little-endian header for `body` (docs/FIRMWARE.md, "The header")."""
    length = HEADER_SIZE + len(body)
    head = struct.pack(
        "<4sHHIHHIII", MAGIC, HEADER_VERSION, HEADER_SIZE, product_id, version, platform_id, length,
        zlib.crc32(body), 0,
    )  # fmt: skip
    return head + struct.pack("<I", zlib.crc32(head))


def _stream(seed: bytes, n: int) -> bytes:
    return hashlib.shake_256(seed).digest(n) if n else b""


def body(size: int, seed: bytes) -> bytes:
    """`size` deterministic bytes: each 4 KiB block is code (about 3 in 4), erased flash or strings."""
    kinds = _stream(seed + b"/layout", size // _BLOCK + 1)
    code = _stream(seed + b"/code", size)
    out = bytearray()
    for i in range(0, size, _BLOCK):
        n = min(_BLOCK, size - i)
        kind = kinds[i // _BLOCK] % 8
        if kind == 6:
            out += b"\xff" * n
        elif kind == 7:
            text = b"fleetsim firmware block %d\x00" % (i // _BLOCK)
            out += (text * (n // len(text) + 1))[:n]
        else:
            out += code[i : i + n]
    return bytes(out)


def build(product_id: int, version: int, size: int, *, platform_id: int = 6, seed: int = 0) -> bytes:
    """A whole binary of exactly `size` bytes (at least the header's 32)."""
    if size < HEADER_SIZE:
        raise ValueError(f"a binary is at least its {HEADER_SIZE}-byte header")
    key = b"fleetsim/%d/%d/%d/%d" % (product_id, version, platform_id, seed)
    payload = body(size - HEADER_SIZE, key)
    return header(product_id, version, platform_id, payload) + payload
