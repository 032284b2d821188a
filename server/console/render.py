"""Rendering console pages: Jinja2 templates (autoescaped: every template is `*.html`) with what
every page needs: the user, the CSRF token, the product and what the caller's role may do."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from protocol.codes import Privilege

from ..api.deps import SESSION_COOKIE, Principal, ProductAccess
from ..api.permissions import WHAT, Perm
from .flash import flash_of, take_flash
from .session import csrf_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
STATIC_DIR = HERE / "static"


def when(value: float | str | None) -> str:
    """A time for people: UTC to the second."""
    if value is None:
        return "never"
    if isinstance(value, str):  # already ISO 8601 (API models)
        return value.replace("T", " ").split(".")[0].removesuffix("Z") + " UTC"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def privileges(value: object) -> list[str]:
    """A Privilege bit set as names."""
    bits = int(value) if isinstance(value, int) else 0
    return [p.name.lower() for p in Privilege if p.name and p in Privilege(bits)] if bits else []


templates.env.filters["when"] = when
templates.env.filters["privileges"] = privileges


def why_not(access: ProductAccess, perm: Perm) -> str:
    """The title of a disabled control: why this caller may not."""
    if access.allows(perm):
        return ""
    role = access.role.value if access.role is not None else "no"
    return f"your role ({role}) may not {WHAT[perm]}"


def page(
    request: Request,
    name: str,
    principal: Principal | None,
    access: ProductAccess | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    session = request.cookies.get(SESSION_COOKIE, "")
    role = access.role.value if access and access.role else None
    context |= {
        "user": principal.username if principal else None,
        "is_admin": principal.is_admin if principal else False,
        "csrf": csrf_token(session) if principal and session else "",
        "access": access,
        "product": access.product if access else None,
        "role": role or ("server admin" if principal and principal.is_admin else None),
        "can": (lambda perm: access.allows(Perm(perm))) if access else (lambda perm: False),
        "why_not": (lambda perm: why_not(access, Perm(perm))) if access else (lambda perm: ""),
        "flash": flash_of(request),
    }
    response = templates.TemplateResponse(request, name, context, status_code=status)
    take_flash(request, response)
    return response
