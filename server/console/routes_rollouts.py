"""The console's rollouts: the list (one bar each), a rollout's page (a bar per stage, failed
devices with their reasons, Pause / Resume / Abort), its live fragment, and the create form,
which shows the devices a rollout would hold (ops.rollouts.preview) before it starts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from ..api.deps import ProductAccess, State
from ..api.permissions import Perm
from ..api.routes_rollouts import rollout_out
from ..ops.base import device_id_or_invalid
from ..ops.rollouts import RolloutRequest
from ..rules.errors import Invalid, OperationError
from ..rules.rollout_model import DeviceState, ErrorAction, Rollout, RolloutSettings, RolloutTarget, Strategy
from .access import product_page
from .product_pages import back
from .render import page
from .rollout_view import bars
from .session import CsrfChecked

router = APIRouter(prefix="/console/products/{product}", include_in_schema=False)

Reader = Annotated[ProductAccess, Depends(product_page(Perm.FIRMWARE_READ))]
RolloutId = Annotated[int, Path(ge=1, le=2**62)]
FAILED_SHOWN = 50


async def _view(state: State, access: ProductAccess, rollout: Rollout) -> dict[str, Any]:
    rows = await state.ctx.store.read(state.store.rollout_devices, rollout.id)
    out = rollout_out(rollout, rows)
    whole, stages = bars(rollout, out)
    failed = [r for r in rows if r.state is DeviceState.FAILED][:FAILED_SHOWN]
    return {"rollout": out, "whole": whole, "stages": stages, "failed": failed, "failed_total": whole.count("failed")}


@router.get("/rollouts")
async def rollouts(request: Request, access: Reader, state: State) -> Response:
    listing = []
    for r in await state.ops.rollouts.all(access.product.id):
        listing.append(await _view(state, access, r))
    versions = await state.ctx.store.read(state.store.list_firmware, access.product.id)
    groups = await state.ops.firmware.groups(access.product.id)
    return page(request, "rollouts.html", access.principal, access, tab="rollouts", rollouts=listing,
                versions=versions, groups=groups)  # fmt: skip


# ---------------------------------------------------------------------- create, after a preview


def _request(form: dict[str, str], groups: list[str]) -> RolloutRequest:
    """The create form as the operation's request (the same one the JSON API builds)."""

    def number(name: str, default: float) -> float:
        text = form.get(name, "").strip()
        try:
            return float(text) if text else default
        except ValueError:
            raise Invalid(f"{name} must be a number", name) from None

    try:
        version = int(form.get("version", "").strip())
    except ValueError:
        raise Invalid("choose a firmware version", "version") from None
    target_kind = form.get("target", "")
    devices: tuple[str, ...] = ()
    if target_kind == "devices":
        devices = tuple(device_id_or_invalid(d) for d in form.get("devices", "").replace(",", " ").split())
    try:
        strategy = Strategy(form.get("strategy", "all"))
        error_action = ErrorAction(form.get("error_action", "pause"))
    except ValueError:
        raise Invalid("choose a strategy and an error action from the lists", "strategy") from None
    defaults = RolloutSettings()
    settings = RolloutSettings(
        strategy=strategy, max_concurrent=int(number("max_concurrent", defaults.max_concurrent)),
        retries=int(number("retries", defaults.retries)),
        device_timeout=number("device_timeout", defaults.device_timeout),
        success_threshold=number("success_threshold", defaults.success_threshold),
        error_threshold=number("error_threshold", defaults.error_threshold), error_action=error_action,
    )  # fmt: skip
    stages = tuple(s for s in form.get("stages", "").replace(",", " ").split() if s)
    target = RolloutTarget(target_kind == "product_default", tuple(groups) if target_kind == "groups" else (), devices)
    return RolloutRequest(version, target, settings, stages if strategy is Strategy.STAGED else ())


FORM_FIELDS = ("version", "target", "devices", "strategy", "stages", "max_concurrent", "retries", "device_timeout",
               "success_threshold", "error_threshold", "error_action")  # fmt: skip


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    data = await request.form()
    fields = {k: v for k in FORM_FIELDS if isinstance(v := data.get(k), str)}
    groups = [g for g in data.getlist("groups") if isinstance(g, str)]
    return fields, groups


async def _new_page(
    request: Request, access: ProductAccess, state: State, form: dict[str, str], groups: list[str], **extra: Any
) -> Response:
    versions = await state.ctx.store.read(state.store.list_firmware, access.product.id)
    all_groups = await state.ops.firmware.groups(access.product.id)
    return page(request, "rollout_new.html", access.principal, access, tab="rollouts", versions=versions,
                all_groups=all_groups, form=form, chosen_groups=groups, **extra)  # fmt: skip


@router.get("/rollouts/new")
async def new_rollout(request: Request, access: Reader, state: State, version: str = "") -> Response:
    return await _new_page(request, access, state, {"version": version, "target": "product_default"}, [])


@router.post("/rollouts/new", dependencies=[CsrfChecked])
async def preview_rollout(request: Request, access: Reader, state: State) -> Response:
    """Step one: what the rollout would hold. Nothing starts; the page then offers Start."""
    form, groups = await _form(request)
    try:
        preview = await state.ops.rollouts.preview(access.product.id, _request(form, groups))
    except OperationError as exc:
        return await _new_page(request, access, state, form, groups, error=exc.message, status=400)
    return await _new_page(request, access, state, form, groups, preview=preview)


@router.post("/rollouts", dependencies=[CsrfChecked])
async def create_rollout(request: Request, access: Reader, state: State) -> Response:
    access.require(Perm.FIRMWARE_RELEASE)
    form, groups = await _form(request)
    try:
        created = await state.ops.rollouts.create(access.actor, access.product.id, _request(form, groups))
    except OperationError as exc:
        return await _new_page(request, access, state, form, groups, error=exc.message, status=400)
    return back(f"/console/products/{access.product.id}/rollouts/{created.id}", f"Rollout {created.id} started.")


# ---------------------------------------------------------------------- one rollout (after /rollouts/new)


@router.get("/rollouts/{rollout_id}")
async def rollout(request: Request, rollout_id: RolloutId, access: Reader, state: State) -> Response:
    found = await state.ops.rollouts.get(access.product.id, rollout_id)
    view = await _view(state, access, found)
    return page(request, "rollout.html", access.principal, access, tab="rollouts", **view)


@router.get("/rollouts/{rollout_id}/live")
async def rollout_live(request: Request, rollout_id: RolloutId, access: Reader, state: State) -> Response:
    """The part of the rollout's page that changes, for the page's script to swap in."""
    found = await state.ops.rollouts.get(access.product.id, rollout_id)
    view = await _view(state, access, found)
    return page(request, "rollout_live.html", access.principal, access, **view)


@router.post("/rollouts/{rollout_id}/{action}", dependencies=[CsrfChecked])
async def act(
    rollout_id: RolloutId, action: Annotated[str, Path(pattern="^(pause|resume|abort)$")], access: Reader,
    state: State,
) -> Response:  # fmt: skip
    access.require(Perm.FIRMWARE_RELEASE)
    ops = state.ops.rollouts
    acts = {"pause": ops.pause, "resume": ops.resume, "abort": ops.abort}
    await acts[action](access.actor, access.product.id, rollout_id)
    done = {"pause": "paused", "resume": "resumed", "abort": "aborted"}[action]
    return back(f"/console/products/{access.product.id}/rollouts/{rollout_id}", f"Rollout {rollout_id} {done}.")
