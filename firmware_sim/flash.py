"""A simulated device's flash: the OTA receive state and bytes, surviving reconnects and reboots.

One Flash per simulated device for its whole life: a transfer interrupted by a dropped link
resumes from what is stored here, as real firmware resumes from its OTA partition.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol.ota import ImageReceiver


class Flash:
    def __init__(self, *, public_key: Ed25519PublicKey | None = None, require_signature: bool = False) -> None:
        self.receiver = ImageReceiver(public_key=public_key, require_signature=require_signature)
        self._partition = bytearray()
        self.installed_version: int | None = None  # set when a verified image is "booted"
        self.bytes_written = 0
        # Faults already injected, as (behaviour, image sha256): a one-off fault stays one-off
        # across the reconnects and retries that follow it.
        self.injected: set[tuple[str, bytes]] = set()

    def write(self, offset: int, data: bytes | memoryview) -> None:
        if offset == 0:
            self._partition.clear()  # a new image (or a restart of one) starts from scratch
        del self._partition[offset:]
        self._partition += data
        self.bytes_written += len(data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._partition[offset : offset + length])
