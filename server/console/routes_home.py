"""The console's entry: `/` redirects here; the product picker lists the products the user works on."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ..api.deps import State
from ..api.models import DeviceCounts
from ..api.routes_users import products_of
from ..api.views import read_device_counts
from ..rules.model import Role
from ..store import Store
from ..store.records import ProductRecord
from .render import page
from .session import ConsoleUser

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/console/", status_code=303)


@router.get("/console")
async def console_root() -> Response:
    return RedirectResponse("/console/", status_code=303)


def _products_with_counts(
    store: Store, user_id: int, admin: bool
) -> list[tuple[ProductRecord, Role | None, DeviceCounts]]:
    return [(p, role, read_device_counts(store, p.id)) for p, role in products_of(store, user_id, admin)]


@router.get("/console/")
async def products(request: Request, state: State, principal: ConsoleUser) -> Response:
    user = principal.require_user()
    rows = await state.ctx.store.read(_products_with_counts, state.store, user.id, user.is_admin)
    return page(request, "products.html", principal, products=rows)
