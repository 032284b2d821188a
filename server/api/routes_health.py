"""Liveness and readiness for load balancers and orchestrators: unauthenticated, cheap, and telling
nothing secret (server/health.py says what each check means)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .deps import State

router = APIRouter(tags=["health"])


class LiveOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    failing: list[str] = Field(
        description="what keeps the node from being ready: database, cluster_bus, node_row, device_listener, "
        "shutting_down (empty when ready)"
    )


@router.get("/healthz", response_model=LiveOut, summary="Liveness: the process serves requests")
async def healthz() -> LiveOut:
    return LiveOut()


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness: this node can take devices and API calls now",
    responses={503: {"description": "Not ready: `failing` names why", "model": ReadyOut}},
)
async def readyz(state: State) -> JSONResponse:
    ctx = state.ctx
    failing = await ctx.health.failing(ctx.store, ctx.bus)
    body = ReadyOut(status="unavailable" if failing else "ready", failing=failing)
    return JSONResponse(body.model_dump(), status_code=503 if failing else 200)
