"""A product's team, customers and audit trail."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from ..ops.base import device_id_or_invalid
from ..rules.errors import Conflict, Invalid
from ..rules.model import Role
from ..store import Store
from .deps import ProductAccess, State, product_access
from .form_bodies import json_or_form, openapi_body
from .models import (
    AuditListOut,
    CustomerEnvelope,
    CustomerIn,
    CustomersOut,
    OkOut,
    TeamMemberEnvelope,
    TeamMemberIn,
    TeamMemberOut,
    TeamOut,
)
from .permissions import Perm
from .views import audit_out, customer_out

router = APIRouter(tags=["team, customers, audit"])

Reader = Annotated[ProductAccess, Depends(product_access(Perm.PRODUCT_READ))]
TeamEditor = Annotated[ProductAccess, Depends(product_access(Perm.TEAM_EDIT))]


def _administrators(store: Store, product_id: int) -> set[str]:
    return {m.username for m in store.team_of(product_id) if m.role is Role.ADMINISTRATOR}


async def keep_an_administrator(state: State, access: ProductAccess, leaving: str, field: str) -> None:
    """Nobody may leave a product without an administrator (a server admin could still repair it,
    but a team should not lock itself out by accident)."""
    if await state.ctx.store.read(_administrators, state.store, access.product.id) == {leaving}:
        raise Conflict(f"{leaving} is the only administrator of product {access.product.id}", field)


@router.get("/v1/products/{product}/team", response_model=TeamOut, summary="Team members and roles")
async def team(access: Reader, state: State) -> TeamOut:
    members = await state.ctx.store.read(state.store.team_of, access.product.id)
    return TeamOut(team=[TeamMemberOut(username=m.username, role=m.role) for m in members])


@router.post(
    "/v1/products/{product}/team",
    response_model=TeamMemberEnvelope,
    status_code=201,
    summary="Add a user to the team or change their role",
)
async def team_add(body: TeamMemberIn, access: TeamEditor, state: State) -> TeamMemberEnvelope:
    role = body.role or await _role_or_least(state, access.product.id, body.username)
    if role is not Role.ADMINISTRATOR:
        await keep_an_administrator(state, access, body.username, "role")
    await state.ops.team_add(access.actor, access.product.id, body.username, role)
    return TeamMemberEnvelope(member=TeamMemberOut(username=body.username, role=role))


async def _role_or_least(state: State, product_id: int, username: str) -> Role:
    """A member's current role, or the least-privileged one for a newcomer."""
    members = await state.ctx.store.read(state.store.team_of, product_id)
    return next((m.role for m in members if m.username == username), Role.VIEW_ONLY)


@router.delete("/v1/products/{product}/team/{username}", response_model=OkOut, summary="Remove a team member")
async def team_remove(username: Annotated[str, Path(max_length=254)], access: TeamEditor, state: State) -> OkOut:
    await keep_an_administrator(state, access, username, "username")
    await state.ops.team_remove(access.actor, access.product.id, username)
    return OkOut()


@router.get("/v1/products/{product}/customers", response_model=CustomersOut, summary="The product's customers")
async def customers(access: Reader, state: State) -> CustomersOut:
    rows = await state.ctx.store.read(state.store.list_customers, access.product.id)
    return CustomersOut(customers=[customer_out(c) for c in rows])


@router.post(
    "/v1/products/{product}/customers",
    response_model=CustomerEnvelope,
    status_code=201,
    summary="Create a customer",
    openapi_extra=openapi_body(CustomerIn, "JSON or form-encoded; particle-api-js sends `email` for `username`"),
)
async def create_customer(
    access: Annotated[ProductAccess, Depends(product_access(Perm.CUSTOMER_CREATE))],
    # Particle names a customer by `email`, in a form (particle-api-js's createCustomer).
    body: Annotated[CustomerIn, Depends(json_or_form(CustomerIn, {"email": "username"}))],
    state: State,
) -> CustomerEnvelope:
    customer = await state.ops.create_customer(access.actor, access.product.id, body.username, body.password)
    return CustomerEnvelope(customer=customer_out(customer))


@router.get("/v1/products/{product}/audit", response_model=AuditListOut, summary="The product's audit trail")
async def audit(
    access: Annotated[ProductAccess, Depends(product_access(Perm.AUDIT_READ))],
    state: State,
    after: Annotated[int, Query(ge=0, le=2**62, description="entries with a larger id")] = 0,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="the `limit` entries just before this id (paging back)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    device_id: Annotated[str | None, Query(max_length=64, description="only entries about this device")] = None,
    actor: Annotated[
        str | None, Query(min_length=1, max_length=128, description="only entries by this actor, e.g. user:alice")
    ] = None,
    action: Annotated[
        str | None, Query(min_length=1, max_length=128, description="only entries of this action, e.g. approved")
    ] = None,
) -> AuditListOut:
    try:
        device = None if device_id is None else device_id_or_invalid(device_id)
    except Invalid as exc:
        raise Invalid(exc.message, "device_id") from None
    read = partial(
        state.store.list_audit, access.product.id, device, after, limit,
        actor=actor, action=action, before_id=before,
    )  # fmt: skip
    entries = await state.ctx.store.read(read)
    return AuditListOut(audit=[audit_out(e) for e in entries])
