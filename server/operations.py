"""Operator actions: the one place that changes products, devices, people and lists.

The HTTP API and the demo call these; each runs as one transaction on the store's writer,
writes an audit entry naming the actor and the reason, and then re-decides admission for
affected live sessions, so privileges change on connected devices at once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from protocol.messages import parse_device_id, parse_public_key

from .link.session import DeviceSession, ServerContext
from .logs import log_event, now
from .rules.admission import Decision
from .rules.errors import Conflict, Invalid, NotFound
from .rules.model import ListState, Owner, Policy, Role
from .rules.passwords import hash_password
from .store import ProductRecord, Store
from .store.base import CustomerRecord, TokenRecord, UserRecord
from .store.ops import Transaction, apply_decision, decide_now
from .webhooks.operations import WebhookOperations

if TYPE_CHECKING:
    from .firmware.operations import FirmwareOperations
    from .rollouts.operations import RolloutOperations

log = logging.getLogger("fleetgate.operations")
T = TypeVar("T")

# A slug needs a letter: an all-digit slug would be read as a product ID.
_SLUG = re.compile(r"^(?=[a-z0-9-]*[a-z])[a-z0-9][a-z0-9-]{0,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{1,254}$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]
    return slug or "product"


def device_id_or_invalid(text: str) -> str:
    try:
        return parse_device_id(text).hex()
    except ValueError as exc:
        raise Invalid(str(exc), "id") from None


@dataclass(slots=True)
class ImportReport:
    """Particle's shape for adding devices to a product."""

    updated: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    nonmember: list[str] = field(default_factory=list)  # belong to another product: not moved
    invalid: list[str] = field(default_factory=list)


class Operations:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    @property
    def sync(self) -> Store:
        return self.ctx.store.sync

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.ctx.store.read(fn, *args)

    async def _tx(self, label: str, fn: Callable[[Store], T]) -> T:
        return await self.ctx.store.write(Transaction(fn, label))  # type: ignore[return-value]

    async def product(self, key: int | str) -> ProductRecord:
        product = await self.read(self.sync.get_product, key)
        if product is None:
            raise NotFound(f"product {key} not found")
        return product

    @property
    def rollouts(self) -> RolloutOperations:
        """Staged firmware rollouts (server/rollouts/operations.py)."""
        from .rollouts.operations import RolloutOperations

        return RolloutOperations(self)

    @property
    def webhooks(self) -> WebhookOperations:
        """Product webhooks (server/webhooks/operations.py)."""
        return WebhookOperations(self.ctx)

    @property
    def firmware(self) -> FirmwareOperations:
        """Firmware, device groups, releases and firmware locks (server/firmware/operations.py)."""
        from .firmware.operations import FirmwareOperations  # here: that module imports this one

        return FirmwareOperations(self)

    # ------------------------------------------------------------------ products

    async def create_product(
        self, actor: str, name: str, *, slug: str | None = None, product_id: int | None = None, policy: Policy
    ) -> ProductRecord:
        name = name.strip()
        if not 1 <= len(name) <= 128:
            raise Invalid("name must be 1..128 characters", "name")
        slug = slug or slugify(name)
        if not _SLUG.match(slug):
            raise Invalid("slug must be lowercase letters, digits and dashes (at most 63)", "slug")
        if product_id is not None and not 1 <= product_id <= 2**31 - 1:
            raise Invalid("id must be 1..2147483647", "id")

        def tx(s: Store) -> ProductRecord:
            product = s._insert_product(product_id, slug, name, policy, now())
            s._append_audit(now(), actor, "product_created", product_id=product.id, detail={"policy": policy.value})
            return product

        return await self._tx("create_product", tx)

    async def update_product(
        self, actor: str, key: int | str, *, name: str | None, policy: Policy | None
    ) -> ProductRecord:
        product = await self.product(key)
        if name is not None and not 1 <= len(name.strip()) <= 128:
            raise Invalid("name must be 1..128 characters", "name")

        def tx(s: Store) -> None:
            s._update_product(product.id, name=name.strip() if name else None, policy=policy)
            if policy is not None and policy is not product.policy:
                s._append_audit(
                    now(), actor, "policy_changed", product_id=product.id,
                    detail={"from": product.policy.value, "to": policy.value},
                )  # fmt: skip

        await self._tx("update_product", tx)
        await self.reevaluate_product(product.id, actor)
        return await self.product(product.id)

    # ------------------------------------------------------------------ people

    async def create_user(self, actor: str, username: str, password: str, *, is_admin: bool = False) -> UserRecord:
        if not _USERNAME.match(username):
            raise Invalid("username: 1..254 of letters, digits and . _ @ + -", "username")
        if len(password) < 8:
            raise Invalid("password must be at least 8 characters", "password")
        hashed = await trio.to_thread.run_sync(hash_password, password)  # scrypt: ~40 ms, off the loop

        def tx(s: Store) -> UserRecord:
            user = s._insert_user(username, hashed, is_admin, now())
            s._append_audit(now(), actor, "user_created", detail={"username": username, "admin": is_admin})
            return user

        return await self._tx("create_user", tx)

    async def team_add(self, actor: str, key: int | str, username: str, role: Role) -> None:
        product = await self.product(key)
        user = await self.read(self.sync.get_user_by_name, username)
        if user is None:
            raise NotFound(f"user {username!r} not found (create it first)", "username")

        def tx(s: Store) -> None:
            s._team_set(product.id, user.id, role)
            s._append_audit(
                now(), actor, "team_member_set", product_id=product.id, detail={"user": username, "role": role.value}
            )

        await self._tx("team_add", tx)
        await self.reevaluate_product(product.id, actor)  # team membership matters to auto-approve

    async def team_remove(self, actor: str, key: int | str, username: str) -> None:
        product = await self.product(key)
        user = await self.read(self.sync.get_user_by_name, username)
        if user is None:
            raise NotFound(f"user {username!r} not found", "username")

        def tx(s: Store) -> None:
            if not s._team_remove(product.id, user.id):
                raise NotFound(f"{username} is not on the team of product {product.id}", "username")
            s._append_audit(now(), actor, "team_member_removed", product_id=product.id, detail={"user": username})

        await self._tx("team_remove", tx)
        await self.reevaluate_product(product.id, actor)

    async def create_customer(self, actor: str, key: int | str, username: str, password: str) -> CustomerRecord:
        product = await self.product(key)
        if not _USERNAME.match(username):
            raise Invalid("username: 1..254 of letters, digits and . _ @ + -", "username")
        if len(password) < 8:
            raise Invalid("password must be at least 8 characters", "password")
        hashed = await trio.to_thread.run_sync(hash_password, password)

        def tx(s: Store) -> CustomerRecord:
            customer = s._insert_customer(product.id, username, hashed, now())
            s._append_audit(now(), actor, "customer_created", product_id=product.id, detail={"customer": username})
            return customer

        return await self._tx("create_customer", tx)

    # ------------------------------------------------------------------ device keys

    async def provision(self, actor: str, rows: Iterable[tuple[str, str]]) -> tuple[list[str], list[tuple[str, str]]]:
        """Register device public keys. Returns (registered IDs, [(id, error)])."""
        good: list[tuple[str, bytes]] = []
        errors: list[tuple[str, str]] = []
        for device_text, key_text in rows:
            try:
                good.append((parse_device_id(device_text).hex(), parse_public_key(key_text)))
            except ValueError as exc:
                errors.append((device_text, str(exc)))

        def tx(s: Store) -> list[str]:
            result = s._import_devices(good, now())
            errors.extend(result.errors)
            for device_id in result.added:
                s._append_audit(now(), actor, "key_registered", device_id=device_id)
            return result.added + result.unchanged

        return await self._tx("provision", tx), errors

    # ------------------------------------------------------------------ product devices

    async def add_device(self, actor: str, key: int | str, device_text: str, *, move: bool = False) -> str:
        """Pre-add, or approve from quarantine or Denied. Returns what happened: preadded, approved
        (from quarantine), reapproved (from Denied) or existing (already a member)."""
        product = await self.product(key)
        device_id = device_id_or_invalid(device_text)

        def tx(s: Store) -> str:
            record = s.get_device(device_id)
            state = s.list_state(product.id, device_id)
            if record is not None and record.product_id == product.id:
                if state is not None:
                    s._set_list_state(product.id, device_id, None, now())
                return "existing"
            if record is not None and record.product_id is not None and not move:
                raise Conflict(
                    f"device {device_id} belongs to product {record.product_id}; approve with move=true to move it",
                    "move",
                )
            s._ensure_device(device_id, now())
            s._set_membership(device_id, product.id)
            s._set_list_state(product.id, device_id, None, now())
            action = "approved" if state in (ListState.QUARANTINED, ListState.DENIED) else "preadded"
            detail: dict[str, object] = {"from": state.value if state else None}
            if record is not None and record.product_id is not None:
                detail["moved_from_product"] = record.product_id
            s._append_audit(now(), actor, action, product_id=product.id, device_id=device_id, detail=detail)
            return "reapproved" if state is ListState.DENIED else action  # the audit says it in detail.from

        outcome = await self._tx("add_device", tx)
        await self.reevaluate_device(device_id, actor)
        return outcome

    async def import_devices(self, actor: str, key: int | str, device_texts: Iterable[str]) -> ImportReport:
        product = await self.product(key)
        report = ImportReport()
        for text in device_texts:
            try:
                outcome = await self.add_device(actor, product.id, text)
            except Invalid:
                report.invalid.append(text)
            except Conflict:
                report.nonmember.append(text.strip().lower())
            else:
                (report.existing if outcome == "existing" else report.updated).append(text.strip().lower())
        return report

    async def remove_device(self, actor: str, key: int | str, device_text: str, *, deny: bool) -> str:
        """Deny (to the Denied list) or remove (leave the product, remembered as removed)."""
        product = await self.product(key)
        device_id = device_id_or_invalid(device_text)

        def tx(s: Store) -> str:
            record = s.get_device(device_id)
            state = s.list_state(product.id, device_id)
            member = record is not None and record.product_id == product.id
            # REMOVED is a memory, not a list: a removed device is no longer in the product,
            # and removing it again must not erase what makes it land on Denied later.
            if not member and state not in (ListState.QUARANTINED, ListState.DENIED):
                raise NotFound(f"device {device_id} is not in product {product.id}")
            if member:
                s._set_membership(device_id, None)
            if deny:
                s._set_list_state(product.id, device_id, ListState.DENIED, now())
                action = "denied"
            elif member:
                s._set_list_state(product.id, device_id, ListState.REMOVED, now())
                action = "removed"
            else:  # a quarantined or denied non-member: forget it
                s._set_list_state(product.id, device_id, None, now())
                action = "unlisted"
            s._append_audit(
                now(), actor, action, product_id=product.id, device_id=device_id,
                detail={"was_member": member, "was": state.value if state else None},
            )  # fmt: skip
            return action

        outcome = await self._tx("remove_device", tx)
        await self.reevaluate_device(device_id, actor)
        return outcome

    async def update_device(self, actor: str, key: int | str, device_text: str, fields: dict[str, object]) -> None:
        product = await self.product(key)
        device_id = device_id_or_invalid(device_text)
        for name, value in fields.items():
            if name == "development" and not isinstance(value, bool):
                raise Invalid("development must be true or false", name)
            if name in ("name", "notes") and value is not None and (not isinstance(value, str) or len(value) > 1024):
                raise Invalid(f"{name} must be text of at most 1024 characters", name)

        def tx(s: Store) -> None:
            record = s.get_device(device_id)
            # Members only: a list entry does not make another product's device ours to edit.
            if record is None or record.product_id != product.id:
                raise NotFound(f"device {device_id} is not a member of product {product.id}")
            s._update_device_fields(device_id, {k: (int(v) if isinstance(v, bool) else v) for k, v in fields.items()})
            s._append_audit(now(), actor, "device_updated", product_id=product.id, device_id=device_id, detail=fields)

        await self._tx("update_device", tx)

    async def set_owner(self, actor: str, device_text: str, owner: Owner | None) -> None:
        device_id = device_id_or_invalid(device_text)

        def tx(s: Store) -> None:
            record = s.get_device(device_id)
            if record is None:
                raise NotFound(f"device {device_id} not found")
            s._set_owner(device_id, owner)
            s._append_audit(
                now(), actor, "owner_set" if owner else "owner_cleared", device_id=device_id,
                product_id=record.product_id,
                detail={"owner": f"{owner.kind}:{owner.id}" if owner else None},
            )  # fmt: skip

        await self._tx("set_owner", tx)
        await self.reevaluate_device(device_id, actor)

    # ------------------------------------------------------------------ API tokens

    async def store_tokens(self, tokens: Sequence[TokenRecord], *, replacing: bytes | None = None) -> None:
        """Save newly issued tokens. With `replacing`, that token is deleted in the same
        transaction and must still exist: a refresh token is good for one exchange only."""

        def tx(s: Store) -> None:
            if replacing is not None and not s._delete_token(replacing):
                raise Invalid("the refresh token has already been used", "refresh_token")
            for token in tokens:
                s._insert_token(token)

        await self._tx("store_tokens", tx)

    async def revoke_token(self, token_hash: bytes) -> bool:
        """Revoke a token together with the rest of its grant (access and refresh token)."""
        return bool(await self._tx("revoke_token", lambda s: s._delete_grant(token_hash)))

    # ------------------------------------------------------------------ live sessions

    async def reevaluate_device(self, device_id: str, actor: str) -> None:
        session = self.ctx.registry.get(device_id)
        if isinstance(session, DeviceSession):
            await self._reevaluate(session, actor)

    async def reevaluate_product(self, product_id: int, actor: str) -> None:
        for session in self.ctx.registry.sessions():
            if isinstance(session, DeviceSession) and product_id in session.products_involved():
                await self._reevaluate(session, actor)

    async def _reevaluate(self, session: DeviceSession, actor: str) -> None:
        """Decide again inside one transaction (no gap between the facts and the write)."""
        hello, old = session.hello, session.decision
        if hello is None or old is None:
            return
        device_id = session.device_id

        def tx(s: Store) -> tuple[Decision | None, int | None]:
            decision, cloud = decide_now(s, device_id, hello.product_id)
            if (decision.status, decision.privileges, decision.mismatch) == (old.status, old.privileges, old.mismatch):
                return None, cloud
            apply_decision(s, device_id, decision, now(), actor)
            return decision, cloud

        decision, cloud = await self._tx("reevaluate", tx)
        if decision is None:
            session.cloud_product_id = cloud
            return
        session.update_decision(decision, cloud)
        log_event(
            log,
            "device_status_changed",
            device_id=device_id,
            status=decision.status.name.lower(),
            was=old.status.name.lower(),
            privileges=int(decision.privileges),
            actor=actor,
            reason=decision.reason,
        )
