"""Operator actions on people: users, product teams, customers, and the API tokens they are issued."""

from __future__ import annotations

import re
from collections.abc import Sequence

import trio

from ..cluster import ReevaluateProduct
from ..logs import now
from ..rules.errors import Invalid, NotFound
from ..rules.model import Role
from ..rules.passwords import hash_password
from ..store.records import CustomerRecord, TokenRecord, UserRecord
from ..store.tx import StoreTx
from .base import OpsBase

_USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{1,254}$")


class PeopleOperations(OpsBase):
    async def create_user(self, actor: str, username: str, password: str, *, is_admin: bool = False) -> UserRecord:
        if not _USERNAME.match(username):
            raise Invalid("username: 1..254 of letters, digits and . _ @ + -", "username")
        if len(password) < 8:
            raise Invalid("password must be at least 8 characters", "password")
        hashed = await trio.to_thread.run_sync(hash_password, password)  # scrypt: ~40 ms, off the loop

        def tx(s: StoreTx) -> UserRecord:
            user = s.insert_user(username, hashed, is_admin, now())
            s.append_audit(now(), actor, "user_created", detail={"username": username, "admin": is_admin})
            return user

        return await self.tx("create_user", tx)

    async def team_add(self, actor: str, key: int | str, username: str, role: Role) -> None:
        product = await self.product(key)
        user = await self.read(self.sync.get_user_by_name, username)
        if user is None:
            raise NotFound(f"user {username!r} not found (create it first)", "username")

        def tx(s: StoreTx) -> None:
            self.notify(s, ReevaluateProduct(product.id, actor))  # team membership matters to auto-approve
            s.team_set(product.id, user.id, role)
            s.append_audit(
                now(), actor, "team_member_set", product_id=product.id, detail={"user": username, "role": role.value}
            )

        await self.tx("team_add", tx)

    async def team_remove(self, actor: str, key: int | str, username: str) -> None:
        product = await self.product(key)
        user = await self.read(self.sync.get_user_by_name, username)
        if user is None:
            raise NotFound(f"user {username!r} not found", "username")

        def tx(s: StoreTx) -> None:
            self.notify(s, ReevaluateProduct(product.id, actor))
            if not s.team_remove(product.id, user.id):
                raise NotFound(f"{username} is not on the team of product {product.id}", "username")
            s.append_audit(now(), actor, "team_member_removed", product_id=product.id, detail={"user": username})

        await self.tx("team_remove", tx)

    async def create_customer(self, actor: str, key: int | str, username: str, password: str) -> CustomerRecord:
        product = await self.product(key)
        if not _USERNAME.match(username):
            raise Invalid("username: 1..254 of letters, digits and . _ @ + -", "username")
        if len(password) < 8:
            raise Invalid("password must be at least 8 characters", "password")
        hashed = await trio.to_thread.run_sync(hash_password, password)

        def tx(s: StoreTx) -> CustomerRecord:
            customer = s.insert_customer(product.id, username, hashed, now())
            s.append_audit(now(), actor, "customer_created", product_id=product.id, detail={"customer": username})
            return customer

        return await self.tx("create_customer", tx)

    # ------------------------------------------------------------------ API tokens

    async def store_tokens(self, tokens: Sequence[TokenRecord], *, replacing: bytes | None = None) -> None:
        """Save newly issued tokens. With `replacing`, that token is deleted in the same
        transaction and must still exist: a refresh token is good for one exchange only."""

        def tx(s: StoreTx) -> None:
            if replacing is not None and not s.delete_token(replacing):
                raise Invalid("the refresh token has already been used", "refresh_token")
            for token in tokens:
                s.insert_token(token)

        await self.tx("store_tokens", tx)

    async def revoke_token(self, token_hash: bytes) -> bool:
        """Revoke a token together with the rest of its grant (access and refresh token)."""
        return bool(await self.tx("revoke_token", lambda s: s.delete_grant(token_hash)))
