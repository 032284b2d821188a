"""EventLog.append: the one way an event enters Fleetgate: stored, then published.

Devices' publishes (link/session.py), the API's (api/routes_events.py) and webhook responses sent
back to a device (webhooks/service.py) all come through here, so what "published" means (the
broker now, the ordered tail of the events table on several nodes: publishing.py) changes in one
place. The publish path stays as cheap as the store's own submit: one write op per event, which is
also its completion callback, and no coroutine of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

import trio

from ..store import AsyncStore
from ..store.records import EventRecord
from ..store.tx import StoreTx
from ..store.writeop import WriteOp
from .publishing import EventFeed

Then = Callable[[int | Exception], None]  # the event's ID once stored, or the exception that kept it out


class AppendEvent(WriteOp[int]):
    """Store one event; the result is its ID. A write batch's consecutive appends are stored
    together (a few multi-row INSERTs instead of one statement and savepoint each). A plain
    slotted class: one is built per published event."""

    __slots__ = ("event",)
    groupable: ClassVar[bool] = True
    small: ClassVar[bool] = True

    def __init__(self, event: EventRecord) -> None:
        self.event = event

    def apply(self, tx: StoreTx) -> int:
        event_id = tx.append_event(self.event)
        tx.index_device_events_if_due(event_id, event_id)
        return event_id

    @classmethod
    def apply_group(cls, tx: StoreTx, ops: Sequence[WriteOp[int]]) -> list[int]:
        events = [op.event for op in ops if isinstance(op, AppendEvent)]
        assert len(events) == len(ops)
        ids = tx.append_events(events)
        if ids:
            tx.index_device_events_if_due(ids[0], ids[-1])
        return ids

    def __repr__(self) -> str:  # the writer logs a failed op by its repr
        return f"{type(self).__name__}({self.event!r})"


class _Append(AppendEvent):
    """AppendEvent, then publish: the writer calls the op itself with the result after commit.
    The feed hears of the append inside the transaction too (a cluster rings the other nodes)."""

    __slots__ = ("feed", "publish", "then")

    def __init__(self, event: EventRecord, feed: EventFeed, then: Then | None) -> None:
        self.event = event
        self.feed = feed
        self.publish = feed.committed
        self.then = then

    def apply(self, tx: StoreTx) -> int:
        event_id = super().apply(tx)
        self.feed.appended(tx, event_id)
        return event_id

    @classmethod
    def apply_group(cls, tx: StoreTx, ops: Sequence[WriteOp[int]]) -> list[int]:
        ids = super().apply_group(tx, ops)
        last = ops[-1]
        if ids and isinstance(last, _Append):
            last.feed.appended(tx, ids[-1])  # once for the whole run
        return ids

    def __call__(self, result: int | Exception) -> None:
        if self.then is not None:
            self.then(result)  # first: a device's ack goes out before any subscriber sees the event
        if isinstance(result, int):  # its ID: streams resume from the store by it
            self.publish(self.event.with_id(result))


class EventLog:
    def __init__(self, store: AsyncStore, feed: EventFeed) -> None:
        self._submit = store.submit
        self._try_submit = store.try_submit
        self._feed = feed

    def append(self, event: EventRecord, then: Then | None = None) -> Awaitable[None]:
        """Queue `event` for the store (await the result: it waits only while the write queue is
        full). Once committed it is published; `then(result)` runs first, on the event loop. An
        event the store refused (`then` gets the exception) is not published."""
        op = _Append(event, self._feed, then)
        return self._submit(op, op)

    def try_append(self, event: EventRecord, then: Then | None = None) -> bool:
        """`append` without waiting or yielding to the scheduler: False (nothing queued) if the
        write queue is full, and the caller awaits `append` instead."""
        op = _Append(event, self._feed, then)
        return self._try_submit(op, op)

    async def append_and_wait(self, event: EventRecord) -> int:
        """`append`, for a caller that answers once the event is stored: its ID (published by then);
        raises what the store raised."""
        done = trio.Event()
        results: list[int | Exception] = []

        def stored(result: int | Exception) -> None:
            results.append(result)
            done.set()

        await self.append(event, stored)
        await done.wait()
        if isinstance(results[0], Exception):
            raise results[0]
        return results[0]
