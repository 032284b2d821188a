"""Operator actions on products: create, rename, change the admission policy."""

from __future__ import annotations

import re

from ..cluster import ReevaluateProduct
from ..logs import now
from ..rules.errors import Invalid
from ..rules.model import Policy, Role
from ..store.records import ProductRecord, UserRecord
from ..store.tx import StoreTx
from .base import OpsBase

# A slug needs a letter: an all-digit slug would be read as a product ID.
_SLUG = re.compile(r"^(?=[a-z0-9-]*[a-z])[a-z0-9][a-z0-9-]{0,62}$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]
    return slug or "product"


class ProductOperations(OpsBase):
    async def create_product(
        self,
        actor: str,
        name: str,
        *,
        slug: str | None = None,
        product_id: int | None = None,
        policy: Policy,
        administrator: UserRecord | None = None,
    ) -> ProductRecord:
        """A new product; `administrator` (its creator, through the API) joins its team in the same
        transaction, so that no product is ever left without the person who made it."""
        name = name.strip()
        if not 1 <= len(name) <= 128:
            raise Invalid("name must be 1..128 characters", "name")
        slug = slug or slugify(name)
        if not _SLUG.match(slug):
            raise Invalid("slug must be lowercase letters, digits and dashes (at most 63)", "slug")
        if product_id is not None and not 1 <= product_id <= 2**31 - 1:
            raise Invalid("id must be 1..2147483647", "id")

        def tx(s: StoreTx) -> ProductRecord:
            product = s.insert_product(product_id, slug, name, policy, now())
            s.append_audit(now(), actor, "product_created", product_id=product.id, detail={"policy": policy.value})
            if administrator is not None:
                self.notify(s, ReevaluateProduct(product.id, actor))  # team membership matters to auto-approve
                s.team_set(product.id, administrator.id, Role.ADMINISTRATOR)
                s.append_audit(now(), actor, "team_member_set", product_id=product.id,
                               detail={"user": administrator.username, "role": Role.ADMINISTRATOR.value})  # fmt: skip
            return product

        return await self.tx("create_product", tx)

    async def update_product(
        self, actor: str, key: int | str, *, name: str | None, policy: Policy | None
    ) -> ProductRecord:
        product = await self.product(key)
        if name is not None and not 1 <= len(name.strip()) <= 128:
            raise Invalid("name must be 1..128 characters", "name")

        def tx(s: StoreTx) -> None:
            self.notify(s, ReevaluateProduct(product.id, actor))
            s.update_product(product.id, name=name.strip() if name else None, policy=policy)
            if policy is not None and policy is not product.policy:
                s.append_audit(
                    now(), actor, "policy_changed", product_id=product.id,
                    detail={"from": product.policy.value, "to": policy.value},
                )  # fmt: skip

        await self.tx("update_product", tx)
        return await self.product(product.id)
