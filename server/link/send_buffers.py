"""Send buffers reused across writers, so an OTA window is sealed into memory already paged in.

A fresh ~1 MiB bytearray per window cost the server more than the encryption (zeroing it and
faulting its pages in: `Connection.send_batch` 21 % self in the ota-50 profile). A writer takes a
buffer for one batch and gives it back when the send is done; trio runs one task at a time, so
no lock. At most MAX_POOLED_BYTES stay pooled between uses: enough for the windows of tens of
concurrent transfers, a bounded cost after an OTA wave."""

from __future__ import annotations

MAX_POOLED_BYTES = 32 * 1024 * 1024


class SendBuffers:
    __slots__ = ("_free", "_pooled_bytes", "max_bytes")

    def __init__(self, max_bytes: int = MAX_POOLED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._free: list[bytearray] = []
        self._pooled_bytes = 0

    def take(self) -> bytearray:
        """A buffer of any size (Connection.send_batch_into grows it as needed)."""
        if not self._free:
            return bytearray()
        buffer = self._free.pop()
        self._pooled_bytes -= len(buffer)
        return buffer

    def give(self, buffer: bytearray) -> None:
        """Back to the pool, unless the pool is full (then it is left to the garbage collector).
        The caller has released every view of it: a later batch may have to grow it."""
        if self._pooled_bytes + len(buffer) > self.max_bytes:
            return
        self._free.append(buffer)
        self._pooled_bytes += len(buffer)

    @property
    def pooled_bytes(self) -> int:
        return self._pooled_bytes


SEND_BUFFERS = SendBuffers()  # the process's: each writer's batch is sealed into one of these
