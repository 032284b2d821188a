"""The firmware binary format: a 32-byte little-endian header at offset 0, then the image body.

docs/FIRMWARE.md describes it byte by byte. `inspect` validates a whole binary and reports its
size and SHA-256; every way a binary can be wrong raises a FirmwareError subclass naming the
header field at fault, and nothing else (tests feed it arbitrary bytes).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

from protocol import limits

MAGIC = b"FGFW"
HEADER_VERSION = 1
# magic, header_version, header_size, product_id, firmware_version, platform_id, image_length,
# image_crc32, reserved, header_crc32
_HEADER = struct.Struct("<4sHHIHHIIII")
HEADER_SIZE = _HEADER.size  # 32
_CRC_COVERS = HEADER_SIZE - 4  # the header CRC covers every byte before it
# What the OTA transfer can carry (16 MiB): no binary a device could not receive is accepted.
MAX_FIRMWARE_SIZE = limits.MAX_OTA_IMAGE_SIZE


class FirmwareError(ValueError):
    """A binary that is not valid firmware. `what` names the header field (or part) at fault."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what
        self.message = message


class TruncatedFirmware(FirmwareError):
    """Fewer bytes than the header, or than the header's image_length."""


class BadMagic(FirmwareError):
    pass


class UnsupportedHeader(FirmwareError):
    """A header version or size this server does not understand."""


class BadHeaderField(FirmwareError):
    """A field outside its range (product ID 0, version 0, reserved bits set)."""


class LengthMismatch(FirmwareError):
    """More bytes than the header's image_length."""


class ChecksumMismatch(FirmwareError):
    pass


class FirmwareTooLarge(FirmwareError):
    pass


class FirmwareMismatch(FirmwareError):
    """A valid binary built for another product or version than the one it is uploaded as."""


@dataclass(frozen=True, slots=True)
class FirmwareHeader:
    product_id: int
    firmware_version: int
    platform_id: int
    image_length: int  # the whole binary, header included
    image_crc32: int  # CRC-32 of the bytes after the header
    header_version: int = HEADER_VERSION

    def pack(self) -> bytes:
        head = _HEADER.pack(
            MAGIC, self.header_version, HEADER_SIZE, self.product_id, self.firmware_version, self.platform_id,
            self.image_length, self.image_crc32, 0, 0,
        )  # fmt: skip
        return head[:_CRC_COVERS] + struct.pack("<I", zlib.crc32(head[:_CRC_COVERS]))


@dataclass(frozen=True, slots=True)
class FirmwareImage:
    header: FirmwareHeader
    size: int
    sha256: str  # 64 lowercase hex characters


def build(product_id: int, firmware_version: int, platform_id: int, body: bytes) -> bytes:
    """A binary around `body` (tests and tools; fleetsim has its own builder, written from the docs)."""
    header = FirmwareHeader(product_id, firmware_version, platform_id, HEADER_SIZE + len(body), zlib.crc32(body))
    return header.pack() + body


def parse_header(data: bytes) -> FirmwareHeader:
    """The header at the start of `data`, checked on its own (the image is not looked at)."""
    if len(data) < HEADER_SIZE:
        raise TruncatedFirmware("header", f"only {len(data)} bytes: shorter than the {HEADER_SIZE}-byte header")
    magic, hver, hsize, product, version, platform, length, image_crc, reserved, header_crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BadMagic("magic", f"not a Fleetgate firmware binary: it starts with {magic!r}, not {MAGIC!r}")
    if zlib.crc32(data[:_CRC_COVERS]) != header_crc:
        raise ChecksumMismatch("header_crc32", "the header's CRC-32 does not match: the header is corrupt")
    if hver != HEADER_VERSION:
        raise UnsupportedHeader("header_version", f"header version {hver} is not supported (only {HEADER_VERSION})")
    if hsize != HEADER_SIZE:
        raise UnsupportedHeader("header_size", f"header size {hsize} is not {HEADER_SIZE} for header version 1")
    if reserved != 0:
        raise BadHeaderField("reserved", "the reserved header field must be zero")
    if not 1 <= product <= limits.MAX_PRODUCT_ID:
        raise BadHeaderField("product_id", f"product ID {product} is outside 1..{limits.MAX_PRODUCT_ID}")
    if version == 0:
        raise BadHeaderField("firmware_version", "firmware version 0 is not a product firmware version (1..65535)")
    if length < HEADER_SIZE:
        raise BadHeaderField("image_length", f"image length {length} is shorter than the header")
    return FirmwareHeader(product, version, platform, length, image_crc, hver)


def inspect(data: bytes, *, max_size: int = MAX_FIRMWARE_SIZE) -> FirmwareImage:
    """Validate a whole binary: header, exact length, image CRC. Reads every byte once more for
    the SHA-256, so callers on an event loop run it in a thread."""
    if len(data) > max_size:
        raise FirmwareTooLarge("image_length", f"the binary is {len(data)} bytes; the limit is {max_size}")
    header = parse_header(data)
    if len(data) < header.image_length:
        raise TruncatedFirmware(
            "image_length", f"the binary is {len(data)} bytes but its header says {header.image_length}: truncated"
        )
    if len(data) > header.image_length:
        raise LengthMismatch(
            "image_length", f"the binary is {len(data)} bytes but its header says {header.image_length}"
        )
    if zlib.crc32(memoryview(data)[HEADER_SIZE:]) != header.image_crc32:
        raise ChecksumMismatch("image_crc32", "the image's CRC-32 does not match its header: the image is corrupt")
    return FirmwareImage(header, len(data), hashlib.sha256(data).hexdigest())


def check_target(header: FirmwareHeader, product_id: int, firmware_version: int) -> None:
    """The binary must be built for the product and version it is uploaded as."""
    if header.product_id != product_id:
        raise FirmwareMismatch(
            "product_id", f"the binary is built for product {header.product_id}, not product {product_id}"
        )
    if header.firmware_version != firmware_version:
        raise FirmwareMismatch(
            "firmware_version",
            f"the binary's header says version {header.firmware_version}, but it is uploaded as {firmware_version}",
        )
