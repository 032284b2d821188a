"""EventFeed: how stored events reach this node's broker.

`DirectFeed` is today's path: an event is published as the write that stored it commits. With one
process, the writer commits in id order, so streams see ids increasing. With several nodes, each
node's writes commit interleaved with the others', so a feed that tails the events table in id
order (woken by the cluster bus) replaces this one; `committed` then only rings its doorbell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..store.records import EventRecord
from .broker import EventBroker


class EventFeed(Protocol):
    @property
    def committed(self) -> Callable[[EventRecord], None]:
        """Called on the event loop as an event this node stored commits (it carries its id)."""
        ...


class DirectFeed:
    def __init__(self, broker: EventBroker) -> None:
        # The broker's own method, bound once: publishing an event costs no call or allocation more.
        self.committed: Callable[[EventRecord], None] = broker.publish
