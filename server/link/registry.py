"""Live sessions by device ID: a newer connection of a device replaces the older one."""

from __future__ import annotations

from typing import Protocol

import trio

from protocol.codes import CloseReason, OtaAbortReason
from protocol.messages import Hello

from ..rules.admission import Decision
from .rate import TokenBucket


class LiveSession(Protocol):
    """What holders of the registry may do with a live session, so that none downcasts to link/session.py's
    DeviceSession (the one kind)."""

    device_id: str
    cloud_product_id: int | None  # the device's product when last decided (operator actions re-decide it)

    @property
    def hello(self) -> Hello | None: ...

    @property
    def decision(self) -> Decision | None: ...

    @property
    def confirmed_in_store(self) -> bool: ...

    def request_close(self, reason: CloseReason, detail: str = "") -> None: ...

    def offer_firmware(self) -> None: ...

    def abort_firmware(self, reason: OtaAbortReason, detail: str = "") -> None: ...

    def update_decision(self, decision: Decision, cloud_product_id: int | None) -> None: ...

    def products_involved(self) -> set[int]: ...


class SessionRegistry:
    def __init__(self) -> None:
        self._live: dict[str, LiveSession] = {}
        # Highest hello counter confirmed by this process, per device: closes the window in
        # which a replayed hello could race the store write of the genuine one.
        self._counters: dict[str, int] = {}
        self._changed = trio.Event()  # set (and replaced) whenever a session arrives or leaves
        # Publish limits per device, kept across connections: reconnecting must not refill them.
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._live)

    def get(self, device_id: str) -> LiveSession | None:
        return self._live.get(device_id)

    def sessions(self) -> list[LiveSession]:
        return list(self._live.values())

    def publish_bucket(self, device_id: str, rate: float, burst: int) -> TokenBucket:
        bucket = self._buckets.get(device_id)
        if bucket is None:
            bucket = self._buckets[device_id] = TokenBucket(rate, burst)
        return bucket

    def publish_bucket_state(self, device_id: str, now: float, wall: float) -> tuple[float, float] | None:
        """(tokens, wall-clock time) of the device's bucket, to hand over to the node it moves to;
        None if it never published here."""
        bucket = self._buckets.get(device_id)
        return None if bucket is None else (bucket.level(now), wall)

    def limit_publish_bucket(self, device_id: str, rate: float, burst: int, handed: tuple[float, float],
                             spent: int, now: float, wall: float) -> None:  # fmt: skip
        """Start from what the device had left elsewhere (`handed`: tokens at a wall-clock time),
        refilled since, less the `spent` this session took before the handover arrived: hopping
        between nodes must not refill the bucket either."""
        tokens, at = handed
        refilled = min(float(burst), tokens + max(0.0, wall - at) * rate)
        self.publish_bucket(device_id, rate, burst).limit_to(refilled - spent, now)

    def last_counter(self, device_id: str) -> int:
        return self._counters.get(device_id, 0)

    def register(self, session: LiveSession, counter: int) -> LiveSession | None:
        """Make `session` the device's live session; the one it replaces is asked to close."""
        old = self._live.get(session.device_id)
        self._live[session.device_id] = session
        self._changed.set()
        self._changed = trio.Event()
        self._counters[session.device_id] = max(counter, self._counters.get(session.device_id, 0))
        if old is not None:
            old.request_close(CloseReason.REPLACED, "a newer connection of this device took over")
        return old

    def unregister(self, session: LiveSession) -> bool:
        """Remove `session` if it is still the live one; False if it had been replaced."""
        if self._live.get(session.device_id) is session:
            del self._live[session.device_id]
            self._changed.set()
            self._changed = trio.Event()
            return True
        return False

    async def wait_changed(self) -> None:
        """Wait until a session arrives or leaves."""
        await self._changed.wait()

    async def wait_gone(self, device_id: str) -> None:
        """Wait until the device has no live session."""
        while device_id in self._live:
            await self._changed.wait()

    async def wait_empty(self) -> None:
        while self._live:
            await self._changed.wait()

    def close_all(self, reason: CloseReason, detail: str = "") -> None:
        for session in list(self._live.values()):
            session.request_close(reason, detail)
