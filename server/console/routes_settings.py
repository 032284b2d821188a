"""The console's product settings: the policy for devices the product does not recognise (each
choice explained), the team and its roles, customers, and device groups. Each form calls the
operation (and the team's last-administrator check) the JSON API calls."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from starlette.responses import Response

from ..api.deps import ProductAccess, State
from ..api.permissions import Perm
from ..api.routes_team import keep_an_administrator
from ..rules.errors import Invalid, OperationError
from ..rules.model import Policy, Role
from .access import product_page
from .product_pages import back
from .render import page
from .session import CsrfChecked

router = APIRouter(prefix="/console/products/{product}", include_in_schema=False)

Reader = Annotated[ProductAccess, Depends(product_page(Perm.PRODUCT_READ))]
Text = Annotated[str, Form(max_length=254)]

POLICIES = [
    (Policy.QUARANTINE, "Quarantine", "A device the product does not know, running the product's firmware, connects"
     " and waits in quarantine with no privileges until someone approves (or denies) it on the Devices page."),
    (Policy.AUTO_APPROVE, "Auto-approve", "Such a device becomes a member at once, unless someone outside the product"
     " owns it (then it is quarantined). Denied devices stay denied."),
    (Policy.PREADD_ONLY, "Pre-add only", "Only devices added to the product beforehand (one by one or imported) get"
     " in; any other device is refused at the handshake and recorded in the audit trail."),
]  # fmt: skip


async def _page(request: Request, access: ProductAccess, state: State, **extra: Any) -> Response:
    team = await state.ctx.store.read(state.store.team_of, access.product.id)
    customers = await state.ctx.store.read(state.store.list_customers, access.product.id)
    groups = await state.ops.firmware.groups(access.product.id)
    return page(request, "settings.html", access.principal, access, tab="settings", policies=POLICIES, team=team,
                customers=customers, groups=groups, roles=[r.value for r in Role], **extra)  # fmt: skip


@router.get("/settings")
async def settings(request: Request, access: Reader, state: State) -> Response:
    return await _page(request, access, state)


def _here(access: ProductAccess) -> str:
    return f"/console/products/{access.product.id}/settings"


@router.post("/settings/policy", dependencies=[CsrfChecked])
async def policy(access: Reader, state: State, value: Annotated[str, Form(alias="policy", max_length=32)]) -> Response:
    access.require(Perm.PRODUCT_EDIT)
    try:
        chosen = Policy(value)
    except ValueError:
        raise Invalid("choose one of the policies", "policy") from None
    await state.ops.update_product(access.actor, access.product.id, name=None, policy=chosen)
    return back(_here(access), f"Policy set to {chosen.value.replace('_', ' ')}.")


@router.post("/settings/team", dependencies=[CsrfChecked])
async def team_add(
    request: Request, access: Reader, state: State, username: Text,
    role: Annotated[str, Form(max_length=32)] = "view_only",
) -> Response:  # fmt: skip
    access.require(Perm.TEAM_EDIT)
    try:
        chosen = Role(role)
        if chosen is not Role.ADMINISTRATOR:
            await keep_an_administrator(state, access, username, "role")
        await state.ops.team_add(access.actor, access.product.id, username.strip(), chosen)
    except ValueError:
        return await _page(request, access, state, team_error="choose one of the roles", status=400)
    except OperationError as exc:
        return await _page(request, access, state, team_error=exc.message, status=400)
    return back(_here(access), f"{username.strip()} is now {chosen.value.replace('_', ' ')}.")


@router.post("/settings/team/{username}/remove", dependencies=[CsrfChecked])
async def team_remove(username: Annotated[str, Path(max_length=254)], access: Reader, state: State) -> Response:
    access.require(Perm.TEAM_EDIT)
    await keep_an_administrator(state, access, username, "username")
    await state.ops.team_remove(access.actor, access.product.id, username)
    return back(_here(access), f"{username} left the team.")


@router.post("/settings/customers", dependencies=[CsrfChecked])
async def customer(
    request: Request, access: Reader, state: State, username: Text,
    password: Annotated[str, Form(max_length=1024)],
) -> Response:  # fmt: skip
    access.require(Perm.CUSTOMER_CREATE)
    try:
        await state.ops.create_customer(access.actor, access.product.id, username.strip(), password)
    except OperationError as exc:
        return await _page(request, access, state, customer_error=exc.message, status=400)
    return back(_here(access), f"Customer {username.strip()} created.")


@router.post("/settings/groups", dependencies=[CsrfChecked])
async def group(
    request: Request, access: Reader, state: State, name: Annotated[str, Form(max_length=64)],
    description: Annotated[str, Form(max_length=4096)] = "",
) -> Response:  # fmt: skip
    access.require(Perm.GROUPS_EDIT)
    try:
        await state.ops.firmware.create_group(access.actor, access.product.id, name.strip(), description)
    except OperationError as exc:
        return await _page(request, access, state, group_error=exc.message, status=400)
    return back(_here(access), f"Group {name.strip()} created.")


@router.post("/settings/groups/{name}/delete", dependencies=[CsrfChecked])
async def group_delete(name: Annotated[str, Path(max_length=64)], access: Reader, state: State) -> Response:
    access.require(Perm.GROUPS_EDIT)
    await state.ops.firmware.delete_group(access.actor, access.product.id, name)
    return back(_here(access), f"Group {name} deleted.")
