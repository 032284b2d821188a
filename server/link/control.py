"""NodeControl: what this node does with a cluster message (cluster/messages.py): act on the live
sessions it holds, ignore devices it does not hold.

Re-deciding a session's admission is here, beside the sessions, because in a cluster it runs on the
node that holds the session, whichever node the operator's request reached.
"""

from __future__ import annotations

import logging
from typing import Protocol

from protocol.codes import CloseReason

from ..cluster.messages import (
    AbortFirmware,
    ControlMessage,
    OfferFirmware,
    ReevaluateDevice,
    ReevaluateProduct,
    SessionReplaced,
    WakeRollouts,
)
from ..logs import log_event, now
from ..rollouts.wakeup import Wakeup
from ..rules.admission import Decision
from ..store import AsyncStore, Transaction
from ..store.tx import StoreTx
from .registry import LiveSession, SessionRegistry
from .writes import apply_decision, decide_now

# The operator's action caused it: its log line stays where operators' actions log.
log = logging.getLogger("fleetgate.operations")


class ControlContext(Protocol):
    """The parts of the server a node acts with (ServerContext has them)."""

    @property
    def store(self) -> AsyncStore: ...

    @property
    def registry(self) -> SessionRegistry: ...

    @property
    def rollout_wakeup(self) -> Wakeup: ...

    @property
    def node_id(self) -> str | None: ...  # cluster mode: this node's id (None: one process)


class NodeControl:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    async def handle(self, message: ControlMessage) -> None:
        registry = self.ctx.registry
        if isinstance(message, ReevaluateDevice):
            if (session := registry.get(message.device_id)) is not None:
                await self._reevaluate(session, message.actor)
        elif isinstance(message, ReevaluateProduct):
            for session in registry.sessions():
                if message.product_id in session.products_involved():
                    await self._reevaluate(session, message.actor)
        elif isinstance(message, OfferFirmware):
            self._offer(message)
        elif isinstance(message, AbortFirmware):
            for device_id in message.device_ids:
                if (session := registry.get(device_id)) is not None:
                    session.abort_firmware(message.reason, message.detail)
        elif isinstance(message, SessionReplaced):
            session = registry.get(message.device_id)
            if session is not None and session.hello is not None and session.hello.counter < message.counter:
                session.request_close(CloseReason.REPLACED, "a newer connection of this device took over")
        elif isinstance(message, WakeRollouts):
            self.ctx.rollout_wakeup.kick()

    async def resync(self) -> None:
        """Cluster messages may have been lost (the bus reconnected): decide every session again
        and look at its firmware target again, as if each had been named in a message."""
        for session in self.ctx.registry.sessions():
            await self._reevaluate(session, "cluster")
            session.offer_firmware()

    def _offer(self, message: OfferFirmware) -> None:
        registry, product_id = self.ctx.registry, message.product_id
        if message.device_ids is None:
            sessions = registry.sessions()
        else:
            sessions = [s for d in message.device_ids if (s := registry.get(d)) is not None]
        for session in sessions:
            if product_id is None or (session.decision is not None and session.decision.product_id == product_id):
                session.offer_firmware()

    async def _reevaluate(self, session: LiveSession, actor: str) -> None:
        """Decide again inside one transaction (no gap between the facts and the write)."""
        hello, old = session.hello, session.decision
        if hello is None or old is None:
            return
        device_id = session.device_id

        def tx(s: StoreTx) -> tuple[Decision | None, int | None]:
            decision, cloud = decide_now(s, device_id, hello.product_id)
            if (decision.status, decision.privileges, decision.mismatch) == (old.status, old.privileges, old.mismatch):
                return None, cloud
            apply_decision(s, device_id, decision, now(), actor)
            return decision, cloud

        node_id = self.ctx.node_id

        def tx_and_record(s: StoreTx) -> tuple[Decision | None, int | None]:
            decision, cloud = tx(s)
            if decision is not None and node_id is not None:  # the leader's scheduler reads it
                s.set_live_privileges(device_id, node_id, int(decision.privileges), decision.product_id)
            return decision, cloud

        decision, cloud = await self.ctx.store.write(Transaction(tx_and_record, "reevaluate"))
        if decision is None:
            session.cloud_product_id = cloud
            return
        session.update_decision(decision, cloud)
        log_event(
            log,
            "device_status_changed",
            device_id=device_id,
            status=decision.status.name.lower(),
            was=old.status.name.lower(),
            privileges=int(decision.privileges),
            actor=actor,
            reason=decision.reason,
        )
