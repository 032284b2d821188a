"""GET /v1/user (who am I) and POST /v1/users (server admins create users)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ..rules.model import Role
from ..store import Store
from ..store.records import ProductRecord
from .deps import Caller, Principal, State, user_with_scope
from .form_bodies import json_or_form, openapi_body
from .models import MeOut, UserEnvelope, UserIn, UserProductOut
from .views import user_out

router = APIRouter(tags=["users"])


def products_of(store: Store, user_id: int, admin: bool) -> list[tuple[ProductRecord, Role | None]]:
    """The products a user works on with their role; a server admin sees every product."""
    out = []
    for product in store.list_products():
        role = store.role_of(product.id, user_id)
        if role is not None or admin:
            out.append((product, role))
    return out


@router.get("/v1/user", response_model=MeOut, response_model_exclude_none=True, summary="The caller")
async def me(caller: Caller, state: State) -> MeOut:
    if caller.customer is not None:
        return MeOut(username=caller.customer.username, customer=True, product_id=caller.customer.product_id)
    assert caller.user is not None
    rows = await state.ctx.store.read(products_of, state.store, caller.user.id, caller.user.is_admin)
    return MeOut(
        username=caller.user.username,
        admin=caller.user.is_admin,
        products=[UserProductOut(id=p.id, slug=p.slug, name=p.name, role=role) for p, role in rows],
    )


@router.post(
    "/v1/users",
    response_model=UserEnvelope,
    status_code=201,
    summary="Create a user (server admins)",
    openapi_extra=openapi_body(UserIn),
)
async def create_user(
    caller: Annotated[Principal, Depends(user_with_scope("users:write", admin=True))],
    body: Annotated[UserIn, Depends(json_or_form(UserIn))],  # particle-cli sends a form
    state: State,
) -> UserEnvelope:
    user = await state.ops.create_user(caller.actor, body.username, body.password, is_admin=body.admin)
    return UserEnvelope(user=user_out(user))
