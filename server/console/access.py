"""Product pages: the console user, then the API's own product access check (one rule)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Path

from ..api.deps import ProductAccess, State, load_product_access
from ..api.permissions import Perm
from .session import ConsoleUser


def product_page(perm: Perm) -> Callable[..., Awaitable[ProductAccess]]:
    """A dependency admitting console users who hold `perm` on the path's product (as the API's
    product_access does for tokens). Refusals render as pages (errors.py)."""

    async def dependency(
        state: State, principal: ConsoleUser, product: str = Path(description="product ID or slug")
    ) -> ProductAccess:
        return await load_product_access(state, principal, product, perm)

    return dependency
