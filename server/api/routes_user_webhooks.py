"""GET /v1/webhooks: every webhook the caller may see, across products (`particle webhook list`).

Fleetgate's webhooks belong to products; Particle's user-level list is answered with the
webhooks of each product whose webhooks the caller's role and token may read (server admins:
every product). Nothing else is listed: deny by default.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ..rules.model import Role
from ..store.records import ProductRecord
from .deps import Principal, ProductAccess, State, user_with_scope
from .models_webhooks import WebhookOut
from .permissions import Perm
from .routes_users import products_of
from .routes_webhooks import webhooks_out

router = APIRouter(tags=["webhooks"])


def _readable(rows: list[tuple[ProductRecord, Role | None]], caller: Principal) -> list[ProductRecord]:
    return [product for product, role in rows if ProductAccess(caller, product, role).allows(Perm.WEBHOOKS_READ)]


@router.get("/v1/webhooks", response_model=list[WebhookOut], summary="Webhooks of every product the caller may read")
async def list_user_webhooks(
    caller: Annotated[Principal, Depends(user_with_scope("webhooks:read"))], state: State
) -> list[WebhookOut]:
    user = caller.require_user()
    rows = await state.ctx.store.read(products_of, state.store, user.id, user.is_admin)
    out: list[WebhookOut] = []
    for product in _readable(rows, caller):
        out.extend(await webhooks_out(await state.ops.webhooks.list(product.id), state))
    return out
