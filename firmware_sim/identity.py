"""Device identities: a 12-byte device ID and an X25519 key pair, stored as CSV files.

`DIR/identities.csv` (device_id,private_key; mode 0600) is what simulated devices load;
`DIR/devices.csv` (device_id,public_key) is what the operator imports into the cloud.
"""

from __future__ import annotations

import csv
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from protocol.messages import parse_device_id
from protocol.noise import KeyPair

PRIVATE_FILE = "identities.csv"
PUBLIC_FILE = "devices.csv"


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    device_id: bytes
    key: KeyPair

    @property
    def device_id_hex(self) -> str:
        return self.device_id.hex()

    @classmethod
    def generate(cls) -> DeviceIdentity:
        return cls(secrets.token_bytes(12), KeyPair.generate())


def write_identities(directory: Path, identities: list[DeviceIdentity]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / PRIVATE_FILE
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["device_id", "private_key"])
        w.writerows([i.device_id_hex, i.key.private.hex()] for i in identities)
    with (directory / PUBLIC_FILE).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["device_id", "public_key"])
        w.writerows([i.device_id_hex, i.key.public.hex()] for i in identities)


def load_identities(directory: Path) -> list[DeviceIdentity]:
    path = directory / PRIVATE_FILE
    out: list[DeviceIdentity] = []
    with path.open(newline="") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or row[0] == "device_id":
                continue
            try:
                out.append(DeviceIdentity(parse_device_id(row[0]), KeyPair(bytes.fromhex(row[1]))))
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from None
    return out


class CounterSource:
    """Hello counters: microseconds since the epoch, strictly increasing within this process.

    Real firmware would persist a counter or use its RTC; a wall-clock microsecond value keeps
    successive simulator runs increasing without any state on disk.
    """

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        value = max(time.time_ns() // 1000, self._last + 1)
        self._last = value
        return value
