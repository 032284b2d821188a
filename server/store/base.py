"""The storage interface. Implementations are synchronous; `AsyncStore` keeps them off the event loop.

Reads may run concurrently with the single writer; all writes go through `write_batch`, which
applies a list of operations in one transaction (the writer service batches them).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device_id: str  # 24 lowercase hex characters
    public_key: bytes  # X25519, 32 bytes
    created_at: float
    owner: str | None = None
    platform_id: int | None = None
    product_id: int | None = None
    firmware_version: int | None = None
    last_heard: float | None = None
    last_handshake_at: float | None = None
    online: bool = False
    last_counter: int = 0


@dataclass(frozen=True, slots=True)
class EventRecord:
    device_id: str
    name: str
    data: bytes
    ttl: int
    private: bool
    published_at: float
    product_id: int | None = None  # set only when the device held the product_events privilege
    id: int | None = None  # assigned by the store


@dataclass(slots=True)
class ImportResult:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (device_id or line, reason)


class WriteOp(abc.ABC):
    """One write, applied inside the writer's transaction; returns its result (or raises)."""

    @abc.abstractmethod
    def apply(self, store: Store) -> object: ...


class Store(abc.ABC):
    # -- reads
    @abc.abstractmethod
    def get_device(self, device_id: str) -> DeviceRecord | None: ...

    @abc.abstractmethod
    def list_devices(self) -> list[DeviceRecord]: ...

    @abc.abstractmethod
    def list_events(self, device_id: str | None = None, after_id: int = 0, limit: int = 1000) -> list[EventRecord]: ...

    # -- writes (call inside write_batch, or use the convenience wrappers)
    @abc.abstractmethod
    def write_batch(self, ops: Sequence[WriteOp]) -> list[object]:
        """Apply ops in one transaction; each op's result, or the Exception it raised (that op
        alone is rolled back), in order."""

    @abc.abstractmethod
    def import_devices(self, rows: Iterable[tuple[str, bytes]], now: float) -> ImportResult: ...

    @abc.abstractmethod
    def _mark_connected(
        self, device_id: str, *, counter: int, firmware_version: int, platform_id: int, at: float
    ) -> None: ...

    @abc.abstractmethod
    def _mark_disconnected(self, device_id: str, at: float) -> None: ...

    @abc.abstractmethod
    def _append_event(self, event: EventRecord) -> int: ...

    @abc.abstractmethod
    def reset_online(self) -> int:
        """Mark every device offline (at startup: no session survives a restart)."""

    @abc.abstractmethod
    def close(self) -> None: ...
