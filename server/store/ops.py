"""The write operations sessions hand to the writer service."""

from __future__ import annotations

from dataclasses import dataclass

from .base import EventRecord, Store, WriteOp


@dataclass(frozen=True, slots=True)
class MarkConnected(WriteOp):
    device_id: str
    counter: int
    firmware_version: int
    platform_id: int
    at: float

    def apply(self, store: Store) -> object:
        store._mark_connected(
            self.device_id,
            counter=self.counter,
            firmware_version=self.firmware_version,
            platform_id=self.platform_id,
            at=self.at,
        )
        return None


@dataclass(frozen=True, slots=True)
class MarkDisconnected(WriteOp):
    device_id: str
    at: float

    def apply(self, store: Store) -> object:
        store._mark_disconnected(self.device_id, self.at)
        return None


@dataclass(frozen=True, slots=True)
class AppendEvent(WriteOp):
    event: EventRecord

    def apply(self, store: Store) -> object:
        return store._append_event(self.event)
