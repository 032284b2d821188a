"""What every product page of the console shares: the caller's access to the path's product
(the JSON API's own check), a form's answer (a redirect back, or the page again with the
operation's error), and numbers shown as bar widths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.responses import RedirectResponse

from ..api.deps import ProductAccess, ProductPath, State, load_product_access
from ..api.permissions import Perm
from ..logs import iso
from .render import templates
from .session import ConsoleUser


def console_access(perm: Perm) -> Callable[..., Awaitable[ProductAccess]]:
    """load_product_access for a console page: the session cookie's user, `perm` on the path's product."""

    async def dependency(product: ProductPath, state: State, principal: ConsoleUser) -> ProductAccess:
        return await load_product_access(state, principal, product, perm)

    return dependency


def back(path: str, notice: str = "") -> RedirectResponse:
    """After a form acted: back to a page (303, so a reload does not post again), with what happened."""
    return RedirectResponse(f"{path}?done={quote(notice)}" if notice else path, status_code=303)


def percent(part: int, whole: int) -> float:
    return 0.0 if whole <= 0 else round(100.0 * part / whole, 2)


def _time(t: float | None) -> str:
    """A stored time as the API writes it (UTC, milliseconds), or an empty string."""
    return "" if t is None else iso(t)


templates.env.filters["console_time"] = _time  # the pages of this slice show store times this way
