"""The firmware header: valid binaries parse, every broken one raises a typed error naming the field."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim import firmware as sim
from server.firmware import image
from server.firmware.image import (
    HEADER_SIZE,
    BadHeaderField,
    BadMagic,
    ChecksumMismatch,
    FirmwareError,
    FirmwareMismatch,
    FirmwareTooLarge,
    LengthMismatch,
    TruncatedFirmware,
    UnsupportedHeader,
    check_target,
    inspect,
    parse_header,
)

BODY = bytes(range(256)) * 8


def reheader(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Change one header field and fix the header CRC, so only that field is wrong."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    struct.pack_into("<I", out, 28, zlib.crc32(bytes(out[:28])))
    return bytes(out)


def test_a_valid_binary_parses() -> None:
    data = image.build(4201, 7, 12, BODY)
    found = inspect(data)
    assert found.header == image.FirmwareHeader(4201, 7, 12, len(data), zlib.crc32(BODY))
    assert found.size == len(data) == HEADER_SIZE + len(BODY)
    assert found.sha256 == __import__("hashlib").sha256(data).hexdigest()
    check_target(found.header, 4201, 7)


def test_the_layout_is_what_the_docs_say() -> None:
    data = image.build(0x01020304, 0x0506, 0x0708, b"xyz")
    assert data[:4] == b"FGFW"
    assert data[4:6] == b"\x01\x00" and data[6:8] == b"\x20\x00"  # header version 1, size 32, little-endian
    assert data[8:12] == b"\x04\x03\x02\x01" and data[12:14] == b"\x06\x05" and data[14:16] == b"\x08\x07"
    assert data[16:20] == struct.pack("<I", 35) and data[20:24] == struct.pack("<I", zlib.crc32(b"xyz"))
    assert data[24:28] == b"\0\0\0\0" and data[28:32] == struct.pack("<I", zlib.crc32(data[:28]))


def test_fleetsim_and_the_server_agree_on_the_format() -> None:
    for size in (32, 33, 4096, 4129, 70_000):
        data = sim.build(99, 65535, size, platform_id=32, seed=5)
        assert len(data) == size
        header = inspect(data).header
        assert (header.product_id, header.firmware_version, header.platform_id) == (99, 65535, 32)


@pytest.mark.parametrize("cut", [0, 1, 4, 31])
def test_shorter_than_the_header(cut: int) -> None:
    with pytest.raises(TruncatedFirmware) as info:
        inspect(image.build(1, 1, 6, BODY)[:cut])
    assert info.value.what == "header"


def test_truncated_image() -> None:
    with pytest.raises(TruncatedFirmware) as info:
        inspect(image.build(1, 1, 6, BODY)[:-1])
    assert info.value.what == "image_length" and "truncated" in info.value.message


def test_trailing_bytes() -> None:
    with pytest.raises(LengthMismatch) as info:
        inspect(image.build(1, 1, 6, BODY) + b"\0")
    assert info.value.what == "image_length"


def test_wrong_magic() -> None:
    data = image.build(1, 1, 6, BODY)
    with pytest.raises(BadMagic) as info:
        inspect(b"\x7fELF" + data[4:])
    assert info.value.what == "magic" and "ELF" in info.value.message


def test_corrupt_header_and_corrupt_image() -> None:
    data = bytearray(image.build(1, 1, 6, BODY))
    data[9] ^= 0x01
    with pytest.raises(ChecksumMismatch) as info:
        parse_header(bytes(data))
    assert info.value.what == "header_crc32"
    data = bytearray(image.build(1, 1, 6, BODY))
    data[-100] ^= 0x80
    with pytest.raises(ChecksumMismatch) as info:
        inspect(bytes(data))
    assert info.value.what == "image_crc32"


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "error", "what"),
    [
        (4, "<H", 2, UnsupportedHeader, "header_version"),
        (6, "<H", 48, UnsupportedHeader, "header_size"),
        (24, "<I", 1, BadHeaderField, "reserved"),
        (8, "<I", 0, BadHeaderField, "product_id"),
        (8, "<I", 2**31, BadHeaderField, "product_id"),
        (12, "<H", 0, BadHeaderField, "firmware_version"),
        (16, "<I", 31, BadHeaderField, "image_length"),
    ],
)
def test_fields_out_of_range(offset: int, fmt: str, value: int, error: type[FirmwareError], what: str) -> None:
    with pytest.raises(error) as info:
        inspect(reheader(image.build(1, 1, 6, BODY), offset, fmt, value))
    assert info.value.what == what


def test_too_large_is_refused_before_parsing() -> None:
    with pytest.raises(FirmwareTooLarge):
        inspect(b"\0" * 101, max_size=100)


def test_wrong_product_or_version() -> None:
    header = inspect(image.build(4201, 3, 6, BODY)).header
    with pytest.raises(FirmwareMismatch) as info:
        check_target(header, 4202, 3)
    assert info.value.what == "product_id" and "4201" in info.value.message
    with pytest.raises(FirmwareMismatch) as info:
        check_target(header, 4201, 4)
    assert info.value.what == "firmware_version"


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_only_typed_errors(data: bytes) -> None:
    try:
        inspect(data)
    except FirmwareError as exc:
        assert exc.what and exc.message
    else:  # pragma: no cover - astronomically unlikely without the magic and two CRCs
        pytest.fail("random bytes parsed as firmware")


@given(st.binary(max_size=200), st.binary(min_size=4, max_size=4))
def test_arbitrary_bytes_behind_the_magic_give_only_typed_errors(data: bytes, tail: bytes) -> None:
    for candidate in (b"FGFW" + data, b"FGFW" + tail + data):
        with pytest.raises(FirmwareError):
            inspect(candidate)


@given(st.binary(max_size=300), st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_caught(body: bytes, position: int, bit: int) -> None:
    data = bytearray(image.build(77, 2, 6, body))
    data[position % len(data)] ^= 1 << bit
    with pytest.raises(FirmwareError):
        inspect(bytes(data))


@given(st.integers(1, 2**31 - 1), st.integers(1, 65535), st.integers(0, 65535), st.binary(max_size=300))
def test_every_valid_header_round_trips(product: int, version: int, platform: int, body: bytes) -> None:
    header = inspect(image.build(product, version, platform, body)).header
    assert (header.product_id, header.firmware_version, header.platform_id) == (product, version, platform)
