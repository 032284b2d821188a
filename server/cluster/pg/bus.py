"""PgBus: the cluster bus over PostgreSQL (docs/CLUSTER.md, "Cluster mode").

- `notify` sends each message with `pg_notify('fg_ctl', …)` inside the write transaction
  (`StoreTx.notice`), so every node gets it iff the write commits, in commit order;
- a listener (listener.py) hands every node's messages, this node's own included, to the handler
  one at a time in the order PostgreSQL delivered them; `fg_events` doorbells go to `on_events`;
- `caught_up` waits until this node has handled every message it notified before the call;
- `leadership` is held through an advisory lock (leader.py) and cancelled when that is lost.

When the listener reconnects, messages sent meanwhile are lost: `resync` re-decides every local
session and rings the event doorbell, and every wait in `caught_up` is released.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import trio

from ...logs import log_event
from ...store.tx import StoreTx
from ..bus import Handler, NotLeader
from ..messages import ControlMessage
from .codec import Envelope, decode, encode
from .leader import LeaderLock
from .listener import Listener
from .nodes import NodeLiveness

log = logging.getLogger("fleetgate.cluster")

CONTROL = "fg_ctl"  # control messages (cluster/messages.py), JSON
EVENTS = "fg_events"  # doorbell: events were appended up to the payload's id


async def _nothing() -> None:
    await trio.lowlevel.checkpoint()


class PgBus:
    def __init__(
        self,
        dsn: str,
        node_id: str,
        handler: Handler,
        *,
        on_events: Callable[[], None] = lambda: None,
        resync: Callable[[], Awaitable[None]] = _nothing,
        unreachable: Callable[[], None] = lambda: None,
        release_node: Callable[[str], Awaitable[None]] | None = None,
        leader_poll: float = 1.0,
        give_up_after: float = 10.0,
        beat: float = 1.0,
        stale_after: float = 10.0,
    ) -> None:
        self.node_id = node_id
        self._handle = handler
        self._on_events = on_events
        self._resync_sessions = resync
        self._last_seq = 0  # of this node's messages, counted from its start
        self._committed = 0  # highest seq of this node's messages that committed
        self._handled = 0  # highest seq of this node's messages handled here
        self._progress = trio.Event()  # set (and replaced) whenever _handled moves
        self._running = False  # run() is listening (or reconnecting)
        self._inbox_send, self._inbox = trio.open_memory_channel[Envelope](math.inf)
        self.listener = Listener(dsn, (CONTROL, EVENTS), self._deliver, self._resync, unreachable,
                                 give_up_after=give_up_after)  # fmt: skip
        self.leader = LeaderLock(dsn, node_id, poll=leader_poll)
        # The sessions of a node found dead are released by the leader (None: no sweeping).
        self._release_node = release_node
        self._unreachable = unreachable
        self.liveness = NodeLiveness(dsn, node_id, beat=beat, stale_after=stale_after)

    # -- ClusterBus
    def notify(self, tx: StoreTx, message: ControlMessage) -> None:
        for payload in encode(self.node_id, self._next_seq, message):
            tx.notice(CONTROL, payload)
        last = self._last_seq
        tx.after_commit(lambda: self._commit(last))

    async def caught_up(self) -> None:
        target = self._committed
        if self._handled < target and not self._running:
            raise RuntimeError("the cluster bus is not running: nothing would deliver this node's messages")
        while self._handled < target:
            await self._progress.wait()

    def leadership(self) -> AbstractAsyncContextManager[None]:
        return self._leading()

    def fence(self, tx: StoreTx) -> None:
        mine, current = self.leader.epoch, tx.leader_epoch()
        if mine is None or current != mine:
            raise NotLeader(f"node {self.node_id} does not lead (epoch {mine}, the cluster's {current})")

    # -- running
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The listener and the handler's loop, until cancelled. Started once it listens."""
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._dispatch)
                await nursery.start(self.listener.run)
                await nursery.start(self.liveness.stamp, self._unreachable)  # swept: as if cut off
                task_status.started()
        finally:
            self._running = False

    def unready(self) -> list[str]:
        failing = []
        if self.listener.failing or self.liveness.failing:
            failing.append("database")
        if not self.listener.listening:
            failing.append("cluster_bus")
        if not self.liveness.current():
            failing.append("node_row")
        return failing

    def _next_seq(self) -> int:
        self._last_seq += 1
        return self._last_seq

    def _commit(self, seq: int) -> None:
        self._committed = max(self._committed, seq)

    def _deliver(self, channel: str, payload: str) -> None:
        if channel == EVENTS:
            self._on_events()
            return
        envelope = decode(payload)
        if envelope is None:
            log_event(log, "cluster_message_unknown", payload=payload[:200])
            return
        self._inbox_send.send_nowait(envelope)

    async def _dispatch(self) -> None:
        async for envelope in self._inbox:
            try:
                await self._handle(envelope.message)
            except Exception:  # one message's failure must not stop the node hearing the others
                log.exception("cluster message failed: %r", envelope.message)
            if envelope.node_id == self.node_id:
                self._advance(envelope.seq)

    def _advance(self, seq: int) -> None:
        if seq > self._handled:
            self._handled = seq
            self._progress.set()
            self._progress = trio.Event()

    async def _resync(self) -> None:
        """After a (re)connect: what was notified while not listening is gone; decide from the tables."""
        self._on_events()
        if self.listener.connects > 1:
            await self._resync_sessions()
        self._advance(self._committed)

    @asynccontextmanager
    async def _leading(self) -> AsyncIterator[None]:
        try:
            await self.leader.acquire()
        except BaseException:  # stopped while waiting for the lock: its connection closes too
            await self.leader.release()
            raise
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._lose_with, nursery.cancel_scope)
                if self._release_node is not None:
                    nursery.start_soon(self.liveness.sweep, self._release_node)
                yield
                nursery.cancel_scope.cancel()
        finally:
            await self.leader.release()

    async def _lose_with(self, scope: trio.CancelScope) -> None:
        await self.leader.hold()
        scope.cancel()  # what runs under the leadership stops
