"""What every operator action stands on: reads, one write transaction, the shared validators, and the
cluster bus that tells live sessions (on whichever node) what a transaction changed. A leaf of ops/: the
other modules here import it, it imports none of them (firmware and rollout actions take this, not the
Operations facade).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from protocol.messages import parse_device_id

from ..cluster import ControlMessage
from ..context import ServerContext
from ..rules.errors import Invalid, NotFound
from ..store import Store, Transaction
from ..store.records import ProductRecord
from ..store.tx import StoreTx

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

    async def tx(self, label: str, fn: Callable[[StoreTx], T]) -> T:
        """Run `fn` as one transaction on the store's writer; what it raises is raised here. Returns once
        this node has acted on what `fn` notified (so an approval answers after the session has it)."""
        result = await self.ctx.store.write(Transaction(fn, label))
        await self.ctx.bus.caught_up()
        return result

    def notify(self, tx: StoreTx, message: ControlMessage) -> None:
        """Inside `fn`: tell every node (live sessions, the rollout scheduler) if and only if it commits."""
        self.ctx.bus.notify(tx, message)

    async def product(self, key: int | str) -> ProductRecord:
        product = await self.read(self.sync.get_product, key)
        if product is None:
            raise NotFound(f"product {key} not found")
        return product
