"""`fleetsim firmware build`: exact sizes, valid headers, deterministic bodies."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from firmware_sim import firmware
from server.firmware.image import inspect

FLEETSIM = [sys.executable, "-m", "firmware_sim.cli"]


@pytest.mark.parametrize("size", [32, 33, 4095, 4096, 4097, 4128, 4129, 100_000, 1_048_576])
def test_exact_sizes_and_valid_headers(size: int) -> None:
    data = firmware.build(4201, 3, size, platform_id=12)
    assert len(data) == size
    header = inspect(data).header
    assert (header.product_id, header.firmware_version, header.platform_id, header.image_length) == (
        4201, 3, 12, size,
    )  # fmt: skip


def test_bodies_are_deterministic_and_seeded() -> None:
    a = firmware.build(1, 1, 50_000)
    assert a == firmware.build(1, 1, 50_000)
    assert a != firmware.build(1, 1, 50_000, seed=1)
    assert a[32:] != firmware.build(1, 2, 50_000)[32:]  # another version is another image


def test_bodies_look_like_firmware() -> None:
    data = firmware.build(1, 1, 400_000)
    ratio = len(zlib.compress(data)) / len(data)
    assert 0.5 < ratio < 0.95  # mostly incompressible code, some erased flash and strings
    assert b"\xff" * 4096 in data and b"fleetsim firmware block" in data


def test_too_small_is_refused() -> None:
    with pytest.raises(ValueError):
        firmware.build(1, 1, 31)


def test_the_build_command(tmp_path: Path) -> None:
    out = tmp_path / "fw.bin"
    args = ["firmware", "build", "--product", "4201", "--version", "9", "--size", "12345", "--out", str(out)]
    result = subprocess.run([*FLEETSIM, *args, "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    data = out.read_bytes()
    assert len(data) == report["size"] == 12345
    assert report["sha256"] == hashlib.sha256(data).hexdigest()
    assert inspect(data).header.firmware_version == 9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--product", "0", "--version", "1", "--size", "100"], "--product must be"),
        (["--product", "1", "--version", "0", "--size", "100"], "--version must be"),
        (["--product", "1", "--version", "70000", "--size", "100"], "--version must be"),
        (["--product", "1", "--version", "1", "--size", "31"], "--size must be"),
        (["--product", "1", "--version", "1", "--size", "100", "--platform", "-1"], "--platform must be"),
    ],
)
def test_build_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    command = [*FLEETSIM, "firmware", "build", *args, "--out", str(tmp_path / "x.bin")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.bin").exists()
