"""What every operator action stands on: reads, one write transaction, the shared validators, and telling
live sessions that their admission may have changed. A leaf of ops/: the other modules here import it,
it imports none of them (firmware and rollout actions take this, not the Operations facade).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from protocol.messages import parse_device_id

from ..context import ServerContext
from ..link.registry import LiveSession
from ..logs import log_event, now
from ..rules.admission import Decision
from ..rules.errors import Invalid, NotFound
from ..store import ProductRecord, Store
from ..store.ops import Transaction, apply_decision, decide_now

log = logging.getLogger("fleetgate.operations")
T = TypeVar("T")


def device_id_or_invalid(text: str) -> str:
    try:
        return parse_device_id(text).hex()
    except ValueError as exc:
        raise Invalid(str(exc), "id") from None


class OpsBase:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    @property
    def sync(self) -> Store:
        return self.ctx.store.sync

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.ctx.store.read(fn, *args)

    async def tx(self, label: str, fn: Callable[[Store], T]) -> T:
        """Run `fn` as one transaction on the store's writer; what it raises is raised here."""
        return await self.ctx.store.write(Transaction(fn, label))  # type: ignore[return-value]

    async def product(self, key: int | str) -> ProductRecord:
        product = await self.read(self.sync.get_product, key)
        if product is None:
            raise NotFound(f"product {key} not found")
        return product

    # ------------------------------------------------------------------ live sessions

    async def reevaluate_device(self, device_id: str, actor: str) -> None:
        session = self.ctx.registry.get(device_id)
        if session is not None:
            await self._reevaluate(session, actor)

    async def reevaluate_product(self, product_id: int, actor: str) -> None:
        for session in self.ctx.registry.sessions():
            if product_id in session.products_involved():
                await self._reevaluate(session, actor)

    async def _reevaluate(self, session: LiveSession, actor: str) -> None:
        """Decide again inside one transaction (no gap between the facts and the write)."""
        hello, old = session.hello, session.decision
        if hello is None or old is None:
            return
        device_id = session.device_id

        def tx(s: Store) -> tuple[Decision | None, int | None]:
            decision, cloud = decide_now(s, device_id, hello.product_id)
            if (decision.status, decision.privileges, decision.mismatch) == (old.status, old.privileges, old.mismatch):
                return None, cloud
            apply_decision(s, device_id, decision, now(), actor)
            return decision, cloud

        decision, cloud = await self.tx("reevaluate", tx)
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
