"""The console's audit trail: newest first, filtered by device, actor and action, paged back."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ..api.deps import ProductAccess, State
from ..api.permissions import Perm
from ..ops.base import device_id_or_invalid
from ..rules.errors import Invalid
from .access import product_page
from .render import page

router = APIRouter(prefix="/console/products/{product}", include_in_schema=False)

Reader = Annotated[ProductAccess, Depends(product_page(Perm.AUDIT_READ))]
Text = Annotated[str, Query(max_length=128)]
PAGE = 50
NEWEST = 2**62


@router.get("/audit")
async def audit(
    request: Request, access: Reader, state: State, device_id: Text = "", actor: Text = "", action: Text = "",
    before: Annotated[int, Query(ge=1, le=NEWEST)] = NEWEST,
) -> Response:  # fmt: skip
    try:
        device = device_id_or_invalid(device_id) if device_id.strip() else None
    except Invalid as exc:
        raise Invalid(exc.message, "device_id") from None
    read = partial(
        state.store.list_audit, access.product.id, device, 0, PAGE,
        actor=actor.strip() or None, action=action.strip() or None, before_id=before,
    )  # fmt: skip
    entries = (await state.ctx.store.read(read))[::-1]
    return page(request, "audit.html", access.principal, access, tab="audit", entries=entries,
                device_id=device or "", actor=actor, action=action, paged=before != NEWEST,
                earlier=entries[-1].id if len(entries) == PAGE else None)  # fmt: skip
