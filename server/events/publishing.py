"""EventFeed: how stored events reach this node's broker.

`DirectFeed` is the one-process path: an event is published as the write that stored it commits.
With one writer, commits come in id order, so streams see ids increasing.

`TailFeed` is the cluster's: each node's writes commit interleaved with the others', so every node
publishes from a tail of the events table read in id order (the store gives ids in commit order),
woken by a doorbell: this node's own commits ring it directly, other nodes' through the cluster
bus (`appended` sends one notice per run of appended events, never one per event), and a poll
every `poll` seconds covers a lost notice. Publishing this node's own events straight from the
commit instead would let it publish id 105 before another node's 104 reaches it, and a stream
that has seen 105 drops 104 (docs/CLUSTER.md, "Cluster mode").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio

from ..logs import log_event
from ..store import AsyncStore
from ..store.records import EventRecord
from ..store.tx import StoreTx
from .broker import EventBroker

log = logging.getLogger("fleetgate.events")

EVENTS_CHANNEL = "fg_events"  # the cluster bus's doorbell channel (cluster/pg/bus.py EVENTS)
TAIL_PAGE = 1000  # events read per query


class EventFeed(Protocol):
    @property
    def committed(self) -> Callable[[EventRecord], None]:
        """Called on the event loop as an event this node stored commits (it carries its id)."""
        ...

    def appended(self, tx: StoreTx, last_id: int) -> None:
        """Inside the write transaction that appended events up to `last_id`."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The feed's service, if it has one; started once it publishes."""
        ...


class DirectFeed:
    def __init__(self, broker: EventBroker) -> None:
        # The broker's own method, bound once: publishing an event costs no call or allocation more.
        self.committed: Callable[[EventRecord], None] = broker.publish

    def appended(self, tx: StoreTx, last_id: int) -> None:
        pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()


class TailFeed:
    def __init__(self, store: AsyncStore, broker: EventBroker, *, ring_others: bool = True, poll: float = 1.0) -> None:
        self._store = store
        self._broker = broker
        self._ring_others = ring_others  # False: one node, no bus to ring (tests on SQLite)
        self.poll = poll
        self.cursor: int | None = None  # the last event ID published here
        self._bell = trio.Event()

    def committed(self, event: EventRecord) -> None:
        self.ring()  # published from the tail, in id order with every node's events

    def appended(self, tx: StoreTx, last_id: int) -> None:
        if self._ring_others:
            tx.notice(EVENTS_CHANNEL, str(last_id))

    def ring(self) -> None:
        """Events may have been appended: read the tail now."""
        self._bell.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        store = self._store
        self.cursor = await store.read(store.sync.last_event_id)  # earlier events are the stores' to replay
        task_status.started()
        failing = False  # one line when reading the tail starts failing, one when it reads again
        while True:
            with trio.move_on_after(self.poll):
                await self._bell.wait()
            self._bell = trio.Event()  # rung from here on: read again after this read
            try:
                await self._publish_new()
            except Exception as exc:  # the database is away: the cursor stays, the next poll reads on
                if not failing:
                    log_event(log, "event_tail_failed", logging.WARNING, error=str(exc).strip()[:200])
                failing = True
            else:
                if failing:
                    log_event(log, "event_tail_resumed", cursor=self.cursor)
                failing = False

    async def _publish_new(self) -> None:
        store, broker = self._store, self._broker
        while True:
            assert self.cursor is not None
            events = await store.read(store.sync.list_events, after_id=self.cursor, limit=TAIL_PAGE)
            for event in events:
                broker.publish(event)
            if events:
                assert events[-1].id is not None
                self.cursor = events[-1].id
            if len(events) < TAIL_PAGE:
                return
