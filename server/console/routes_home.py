"""The console's entry: `/` redirects here; the product picker lists the products the user works on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import RedirectResponse, Response

from ..api.bodies import key_rows, upload_text
from ..api.deps import State
from ..api.models import DeviceCounts
from ..api.routes_users import products_of
from ..api.views import read_device_counts
from ..rules.errors import Forbidden, Invalid, OperationError
from ..rules.model import Policy, Role
from ..store import Store
from ..store.records import ProductRecord
from .product_pages import back
from .render import page
from .session import ConsoleUser, CsrfChecked

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
    return await _products_page(request, state, principal)


async def _products_page(
    request: Request, state: State, principal: ConsoleUser, status: int = 200, **errors: str
) -> Response:
    user = principal.require_user()
    rows = await state.ctx.store.read(_products_with_counts, state.store, user.id, user.is_admin)
    return page(request, "products.html", principal, status=status, products=rows, policies=list(Policy),
                create_error=errors.get("create", ""), keys_error=errors.get("keys", ""))  # fmt: skip


@router.post("/console/products", dependencies=[CsrfChecked])
async def create_product(
    request: Request, state: State, principal: ConsoleUser,
    name: Annotated[str, Form(max_length=128)],
    product_id: Annotated[str, Form(alias="id", max_length=10)] = "",
    policy: Annotated[str, Form(max_length=32)] = Policy.QUARANTINE.value,
) -> Response:  # fmt: skip
    """As POST /v1/products: the creator becomes the product's administrator; only a server admin
    picks the ID (firmware compiles it in), others get the next free one."""
    user = principal.require_user()
    principal.require_scope("products:write")
    try:
        chosen_id = int(product_id) if product_id.strip() else None
        if chosen_id is not None and not user.is_admin:
            raise Forbidden("only a server admin may choose a product ID", "id")
        product = await state.ops.create_product(
            principal.actor, name, product_id=chosen_id, policy=Policy(policy), administrator=user
        )
    except ValueError:
        return await _products_page(
            request, state, principal, status=400, create="id must be a number and policy one of the three"
        )
    except OperationError as exc:
        return await _products_page(request, state, principal, status=400, create=exc.message)
    return back(f"/console/products/{product.id}/devices", f"Product {product.name} created with ID {product.id}.")


@router.post("/console/keys", dependencies=[CsrfChecked])
async def register_keys(
    request: Request, state: State, principal: ConsoleUser, file: Annotated[UploadFile | None, File()] = None
) -> Response:
    """As POST /v1/provisioning with a CSV file (server admins): the device keys devices prove at
    their handshake; a device whose key is not registered is refused whatever its product."""
    principal.require_user()
    principal.require_scope("provisioning:write")
    if not principal.is_admin:
        raise Forbidden("only a server admin registers device keys")
    try:
        if file is None or not file.filename:
            raise Invalid("choose a CSV file of device_id,public_key lines", "file")
        good, bad = key_rows(await upload_text(request))
        registered, errors = await state.ops.provision(principal.actor, good)
    except OperationError as exc:
        return await _products_page(request, state, principal, status=400, keys=exc.message)
    problems = bad + errors
    notice = f"{len(registered)} device keys registered" + (f", {len(problems)} refused" if problems else "")
    if problems:
        notice += f" (first: {problems[0][0]}: {problems[0][1]})"
    return back("/console/", notice + ".")
