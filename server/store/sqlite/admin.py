"""SQLite queries for products, people, tokens, product lists and the audit trail.

A mixin of SQLiteStore: reads (store/reads.py) use the reader connection `_r`, or the writer's `_w`
inside a batch; writes (store/tx.py) run only inside `write_batch`, on the writer connection `_w`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from ...rules.admission import DeviceFacts, ProductFacts
from ...rules.errors import Conflict, NotFound
from ...rules.model import ListState, Owner, Policy, Role
from ..records import (
    AuditRecord,
    CustomerRecord,
    DeviceQuery,
    DeviceRecord,
    ProductRecord,
    TeamMember,
    TokenRecord,
    UserRecord,
)
from ..sql import SqlConnection
from .rows import DEVICE_COLUMNS, device_from_row, window_by_id

_PRODUCT = "id, slug, name, policy, created_at"
_USER = "id, username, password_hash, is_admin, created_at"
_CUSTOMER = "id, product_id, username, password_hash, created_at"
_TOKEN = "token_hash, user_id, customer_id, scopes, client, created_at, expires_at, refresh, grant_id"
_D_DEVICE = ", ".join(f"d.{c.strip()}" for c in DEVICE_COLUMNS.split(","))  # for queries joining devices d
_SORTS = {"device_id": "d.device_id", "firmware_version": "d.firmware_version", "last_heard": "d.last_heard",
          "name": "d.name"}  # fmt: skip


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere (its own % and _ taken literally, escape \\)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(query: DeviceQuery, product_id: int, args: list[object]) -> str:
    """WHERE clauses for a device list's filters; their values appended to args."""
    sql = ""
    if query.device_id:
        sql += " AND d.device_id LIKE ? ESCAPE '\\'"
        args.append(_like(query.device_id.lower()))
    if query.name:
        sql += " AND d.name LIKE ? ESCAPE '\\'"
        args.append(_like(query.name))
    if query.groups:
        marks = ", ".join("?" * len(query.groups))
        sql += (
            " AND d.device_id IN (SELECT m.device_id FROM device_group_members m"
            f" JOIN device_groups g ON g.id = m.group_id WHERE g.product_id = ? AND g.name IN ({marks}))"
        )
        args.extend([product_id, *query.groups])
    if query.firmware_version is not None:
        sql += " AND d.firmware_version = ?"
        args.append(query.firmware_version)
    if query.online is not None:
        sql += " AND d.online = ?"
        args.append(int(query.online))
    return sql


def _order(query: DeviceQuery) -> str:
    if query.sort is None:
        return "d.created_at, d.device_id"
    direction = "DESC" if query.descending else "ASC"
    return f"{_SORTS[query.sort]} {direction} NULLS LAST, d.device_id {direction}"


# admission_facts: one row whatever exists (the device, the product, its list entry, its team).
_ADMISSION_FACTS = (
    f"SELECT {_D_DEVICE}, p.id, p.policy, l.state,"
    " (SELECT group_concat(t.user_id) FROM team t WHERE t.product_id = p.id)"
    " FROM (SELECT 1) LEFT JOIN devices d ON d.device_id = ?1"
    " LEFT JOIN products p ON p.id = ?2"
    " LEFT JOIN product_devices l ON l.product_id = p.id AND l.device_id = ?1"
)
# ... with the admission epoch first (migration 16), read in the same statement: one snapshot.
_ADMISSION_FACTS_AT = _ADMISSION_FACTS.replace("SELECT ", "SELECT (SELECT n FROM admission_epoch), ", 1)

# _ADMISSION_FACTS_AT for many (device, product) pairs in one statement, in the order asked.
_ADMISSION_FACTS_MANY = (
    "WITH k(i, dev, prod) AS (VALUES {values})"
    f" SELECT (SELECT n FROM admission_epoch), {_D_DEVICE}, p.id, p.policy, l.state,"
    " (SELECT group_concat(t.user_id) FROM team t WHERE t.product_id = p.id)"
    " FROM k LEFT JOIN devices d ON d.device_id = k.dev"
    " LEFT JOIN products p ON p.id = k.prod"
    " LEFT JOIN product_devices l ON l.product_id = p.id AND l.device_id = k.dev ORDER BY k.i"
)
# Pairs per statement at most: far below either engine's limit on parameters.
ADMISSION_READS_PER_STATEMENT = 256


def admission_rows_many(
    q: SqlConnection, sql: str, requests: Sequence[tuple[str, int | None]]
) -> list[tuple[int | None, DeviceRecord | None, DeviceFacts, ProductFacts | None]]:
    """Run `sql` (_ADMISSION_FACTS_MANY in one engine's spelling, `{values}` for the rows of k)
    for `requests`, one statement per ADMISSION_READS_PER_STATEMENT of them."""
    out: list[tuple[int | None, DeviceRecord | None, DeviceFacts, ProductFacts | None]] = []
    for start in range(0, len(requests), ADMISSION_READS_PER_STATEMENT):
        chunk = requests[start : start + ADMISSION_READS_PER_STATEMENT]
        # Padded to a power of two with the last pair again: a few statement texts to prepare and
        # keep in the connection's cache, not one per length.
        rows_asked = 1 << (len(chunk) - 1).bit_length()
        args: list[object] = []
        for i, (device_id, product_id) in enumerate([*chunk, *[chunk[-1]] * (rows_asked - len(chunk))]):
            args += (i, device_id, product_id)
        row_sql = "(CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS BIGINT))"
        rows = q.execute(sql.format(values=", ".join([row_sql] * rows_asked)), args).fetchall()[: len(chunk)]
        out.extend(
            (epoch_of(row[0]), *admission_facts_of(row[1:], pid)) for row, (_, pid) in zip(rows, chunk, strict=True)
        )
    return out


def _product(row: tuple[Any, ...]) -> ProductRecord:
    return ProductRecord(row[0], row[1], row[2], Policy(row[3]), row[4])


def _user(row: tuple[Any, ...]) -> UserRecord:
    return UserRecord(row[0], row[1], row[2], bool(row[3]), row[4])


def _customer(row: tuple[Any, ...]) -> CustomerRecord:
    return CustomerRecord(*row)


def _token(row: tuple[Any, ...]) -> TokenRecord:
    return TokenRecord(
        bytes(row[0]), row[1], row[2], frozenset(row[3].split()), row[4], row[5], row[6], bool(row[7]), row[8]
    )


def admission_facts_of(
    row: Any, fw_product_id: int | None
) -> tuple[DeviceRecord | None, DeviceFacts, ProductFacts | None]:
    """The admission query's row (the device's columns, then the product's id, policy, list state
    and team) as `decide`'s facts; both engines' queries end in the same columns."""
    device, (product_id, policy, state, team) = row[:-4], row[-4:]
    record = device_from_row(device) if device[0] is not None else None
    facts = DeviceFacts(record.product_id if record else None, record.owner if record else None)
    if fw_product_id is None or product_id is None:
        return record, facts, None
    members = frozenset(int(u) for u in team.split(",")) if team else frozenset()
    return record, facts, ProductFacts(fw_product_id, Policy(policy), members, ListState(state) if state else None)


def epoch_of(value: object) -> int | None:
    """The epoch as read; None (no row: unknown) never equals an earlier epoch, so it means read again."""
    return value if isinstance(value, int) else None


class AdminQueries:
    _r: SqlConnection
    _w: SqlConnection
    _local: threading.local
    # What a constraint failing raises (the PostgreSQL store's adapter raises its driver's).
    _integrity_error: ClassVar[type[Exception]] = sqlite3.IntegrityError

    def _insert_id(self, sql: str, args: Sequence[object]) -> int:
        """Run an INSERT of one row into a table with an `id` key it generates: that ID."""
        cur = self._w.execute(sql, args)
        row_id = getattr(cur, "lastrowid", None)
        assert isinstance(row_id, int)
        return row_id

    @property
    def _q(self) -> SqlConnection:
        """The connection for reads: the writer's inside a write batch on this thread, so a check
        sees what earlier operations of the same transaction wrote; the reader's otherwise."""
        if getattr(self._local, "in_batch", False):
            return self._w
        return getattr(self._local, "reader", None) or self._r  # `read_on_loop` sets its own

    # ------------------------------------------------------------------ products

    def get_product(self, key: int | str) -> ProductRecord | None:
        """By numeric ID or slug (Particle's `productIdOrSlug`)."""
        if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 10:
            key = int(key)
        if isinstance(key, int):
            if not 0 < key < 2**31:
                return None
            row = self._q.execute(f"SELECT {_PRODUCT} FROM products WHERE id = ?", (key,)).fetchone()
        else:
            row = self._q.execute(f"SELECT {_PRODUCT} FROM products WHERE slug = ?", (key,)).fetchone()
        return _product(row) if row else None

    def list_products(self) -> list[ProductRecord]:
        return [_product(r) for r in self._q.execute(f"SELECT {_PRODUCT} FROM products ORDER BY id")]

    def insert_product(self, product_id: int | None, slug: str, name: str, policy: Policy, at: float) -> ProductRecord:
        try:
            new_id = self._insert_id(
                "INSERT INTO products (id, slug, name, policy, created_at) VALUES (COALESCE(?, 1 + (SELECT"
                " COALESCE(MAX(id), 0) FROM products)), ?, ?, ?, ?)",
                (product_id, slug, name, policy.value, at),
            )
        except self._integrity_error:
            raise Conflict(f"a product with ID {product_id} or slug {slug!r} already exists") from None
        return ProductRecord(new_id, slug, name, policy, at)

    def update_product(self, product_id: int, *, name: str | None = None, policy: Policy | None = None) -> None:
        if name is not None:
            self._w.execute("UPDATE products SET name = ? WHERE id = ?", (name, product_id))
        if policy is not None:
            self._w.execute("UPDATE products SET policy = ? WHERE id = ?", (policy.value, product_id))

    # ------------------------------------------------------------------ users and team

    def get_user(self, user_id: int) -> UserRecord | None:
        row = self._q.execute(f"SELECT {_USER} FROM users WHERE id = ?", (user_id,)).fetchone()
        return _user(row) if row else None

    def get_user_by_name(self, username: str) -> UserRecord | None:
        row = self._q.execute(f"SELECT {_USER} FROM users WHERE username = ?", (username,)).fetchone()
        return _user(row) if row else None

    def list_users(self) -> list[UserRecord]:
        return [_user(r) for r in self._q.execute(f"SELECT {_USER} FROM users ORDER BY id")]

    def insert_user(self, username: str, password_hash: str, is_admin: bool, at: float) -> UserRecord:
        try:
            new_id = self._insert_id(
                "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?)",
                (username, password_hash, int(is_admin), at),
            )
        except self._integrity_error:
            raise Conflict(f"user {username!r} already exists", "username") from None
        return UserRecord(new_id, username, password_hash, is_admin, at)

    def team_of(self, product_id: int) -> list[TeamMember]:
        rows = self._q.execute(
            "SELECT t.product_id, t.user_id, u.username, t.role FROM team t JOIN users u ON u.id = t.user_id"
            " WHERE t.product_id = ? ORDER BY u.username",
            (product_id,),
        )
        return [TeamMember(p, u, name, Role(role)) for (p, u, name, role) in rows]

    def role_of(self, product_id: int, user_id: int) -> Role | None:
        row = self._q.execute(
            "SELECT role FROM team WHERE product_id = ? AND user_id = ?", (product_id, user_id)
        ).fetchone()
        return Role(row[0]) if row else None

    def team_set(self, product_id: int, user_id: int, role: Role) -> None:
        self._w.execute(
            "INSERT INTO team (product_id, user_id, role) VALUES (?, ?, ?)"
            " ON CONFLICT (product_id, user_id) DO UPDATE SET role = excluded.role",
            (product_id, user_id, role.value),
        )

    def team_remove(self, product_id: int, user_id: int) -> bool:
        cur = self._w.execute("DELETE FROM team WHERE product_id = ? AND user_id = ?", (product_id, user_id))
        return cur.rowcount > 0

    # ------------------------------------------------------------------ customers

    def get_customer(self, customer_id: int) -> CustomerRecord | None:
        row = self._q.execute(f"SELECT {_CUSTOMER} FROM customers WHERE id = ?", (customer_id,)).fetchone()
        return _customer(row) if row else None

    def get_customer_by_name(self, product_id: int, username: str) -> CustomerRecord | None:
        row = self._q.execute(
            f"SELECT {_CUSTOMER} FROM customers WHERE product_id = ? AND username = ?", (product_id, username)
        ).fetchone()
        return _customer(row) if row else None

    def find_customers(self, username: str) -> list[CustomerRecord]:
        rows = self._q.execute(f"SELECT {_CUSTOMER} FROM customers WHERE username = ? ORDER BY id", (username,))
        return [_customer(r) for r in rows]

    def list_customers(self, product_id: int) -> list[CustomerRecord]:
        rows = self._q.execute(f"SELECT {_CUSTOMER} FROM customers WHERE product_id = ? ORDER BY id", (product_id,))
        return [_customer(r) for r in rows]

    def insert_customer(self, product_id: int, username: str, password_hash: str, at: float) -> CustomerRecord:
        try:
            new_id = self._insert_id(
                "INSERT INTO customers (product_id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (product_id, username, password_hash, at),
            )
        except self._integrity_error:
            raise Conflict(f"customer {username!r} already exists in this product", "username") from None
        return CustomerRecord(new_id, product_id, username, password_hash, at)

    # ------------------------------------------------------------------ tokens

    def get_token(self, token_hash: bytes) -> TokenRecord | None:
        row = self._q.execute(f"SELECT {_TOKEN} FROM tokens WHERE token_hash = ?", (token_hash,)).fetchone()
        return _token(row) if row else None

    def list_tokens(self, user_id: int) -> list[TokenRecord]:
        rows = self._q.execute(
            f"SELECT {_TOKEN} FROM tokens WHERE user_id = ? AND refresh = 0 ORDER BY created_at", (user_id,)
        )
        return [_token(r) for r in rows]

    def insert_token(self, token: TokenRecord) -> None:
        self._w.execute(
            f"INSERT INTO tokens ({_TOKEN}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token.token_hash,
                token.user_id,
                token.customer_id,
                " ".join(sorted(token.scopes)),
                token.client,
                token.created_at,
                token.expires_at,
                int(token.refresh),
                token.grant_id,
            ),
        )

    def delete_token(self, token_hash: bytes) -> bool:
        return self._w.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,)).rowcount > 0

    def delete_grant(self, token_hash: bytes) -> int:
        """Delete a token and every token of its grant (its refresh or access twin)."""
        row = self._w.execute("SELECT grant_id FROM tokens WHERE token_hash = ?", (token_hash,)).fetchone()
        if row is None:
            return 0
        if row[0] is None:
            return int(self.delete_token(token_hash))
        return self._w.execute("DELETE FROM tokens WHERE grant_id = ?", (row[0],)).rowcount

    # ------------------------------------------------------------------ product membership and lists

    def list_state(self, product_id: int, device_id: str) -> ListState | None:
        row = self._q.execute(
            "SELECT state FROM product_devices WHERE product_id = ? AND device_id = ?", (product_id, device_id)
        ).fetchone()
        return ListState(row[0]) if row else None

    def admission_facts(
        self, device_id: str, fw_product_id: int | None
    ) -> tuple[DeviceRecord | None, DeviceFacts, ProductFacts | None]:
        """Everything `decide` needs about one device and the product its firmware reports, in one
        query (it runs for every connection: four queries were a tenth of a handshake's CPU)."""
        row = self._q.execute(_ADMISSION_FACTS, (device_id, fw_product_id)).fetchone()
        return admission_facts_of(row, fw_product_id)

    def admission_facts_at(
        self, device_id: str, fw_product_id: int | None
    ) -> tuple[int | None, DeviceRecord | None, DeviceFacts, ProductFacts | None]:
        """`admission_facts` and the admission epoch they were read at, from one snapshot."""
        row = self._q.execute(_ADMISSION_FACTS_AT, (device_id, fw_product_id)).fetchone()
        return (epoch_of(row[0]), *admission_facts_of(row[1:], fw_product_id))

    def admission_facts_many(
        self, requests: Sequence[tuple[str, int | None]]
    ) -> list[tuple[int | None, DeviceRecord | None, DeviceFacts, ProductFacts | None]]:
        """`admission_facts_at` for each pair (see Store.admission_facts_many)."""
        return admission_rows_many(self._q, _ADMISSION_FACTS_MANY, requests)

    def admission_epoch(self) -> int | None:
        """The admission epoch: moved by every change to a fact admission decides on (migration 16)."""
        row = self._q.execute("SELECT n FROM admission_epoch").fetchone()
        return epoch_of(row[0] if row else None)

    def product_devices(
        self, product_id: int, status: str | None, offset: int, limit: int, query: DeviceQuery | None = None
    ) -> tuple[list[tuple[DeviceRecord, ListState | None]], int]:
        """Members and listed devices of a product. status: approved, quarantined, denied or None (all)."""
        base = (
            " FROM devices d LEFT JOIN product_devices l ON l.device_id = d.device_id AND l.product_id = ?"
            " WHERE (d.product_id = ? OR l.state IN ('quarantined', 'denied'))"
        )
        args: list[object] = [product_id, product_id]
        if status == "approved":
            base += " AND d.product_id = ?"
            args.append(product_id)
        elif status in ("quarantined", "denied"):
            base += " AND l.state = ?"
            args.append(status)
        query = query or DeviceQuery()
        base += _filtered(query, product_id, args)
        (total,) = self._q.execute("SELECT COUNT(*)" + base, args).fetchone()
        rows = self._q.execute(
            f"SELECT {_D_DEVICE}, l.state" + base + f" ORDER BY {_order(query)} LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        out = [(device_from_row(r[:-1]), ListState(r[-1]) if r[-1] else None) for r in rows]
        return out, int(total)

    def live_product_ids(self, device_id: str) -> list[int]:
        rows = self._q.execute("SELECT product_id FROM product_devices WHERE device_id = ?", (device_id,))
        return [p for (p,) in rows]

    def set_list_state(self, product_id: int, device_id: str, state: ListState | None, at: float) -> None:
        if state is None:
            self._w.execute(
                "DELETE FROM product_devices WHERE product_id = ? AND device_id = ?", (product_id, device_id)
            )
            return
        self._w.execute(
            "INSERT INTO product_devices (product_id, device_id, state, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (product_id, device_id)"
            " DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            (product_id, device_id, state.value, at),
        )

    def leave_denied_lists(self, device_id: str) -> int:
        # A removal is a Denied entry not yet made: forgetting both is what keeps the outcome
        # independent of whether the device came back on product firmware before or after.
        cur = self._w.execute(
            "DELETE FROM product_devices WHERE device_id = ? AND state IN ('denied', 'removed')", (device_id,)
        )
        return cur.rowcount

    def ensure_device(self, device_id: str, at: float) -> None:
        """A device row without a key: pre-adding a device before it is provisioned."""
        self._w.execute(
            "INSERT INTO devices (device_id, public_key, created_at) VALUES (?, NULL, ?) ON CONFLICT DO NOTHING",
            (device_id, at),
        )

    def set_membership(self, device_id: str, product_id: int | None) -> None:
        cur = self._w.execute("UPDATE devices SET product_id = ? WHERE device_id = ?", (product_id, device_id))
        if cur.rowcount == 0:
            raise NotFound(f"device {device_id} not found")

    def set_owner(self, device_id: str, owner: Owner | None) -> None:
        cur = self._w.execute(
            "UPDATE devices SET owner_kind = ?, owner_id = ? WHERE device_id = ?",
            (owner.kind if owner else None, owner.id if owner else None, device_id),
        )
        if cur.rowcount == 0:
            raise NotFound(f"device {device_id} not found")

    def update_device_fields(self, device_id: str, fields: dict[str, object]) -> None:
        allowed = {"development", "name", "notes"}
        for name, value in fields.items():
            if name not in allowed:
                raise ValueError(name)
            self._w.execute(f"UPDATE devices SET {name} = ? WHERE device_id = ?", (value, device_id))

    # ------------------------------------------------------------------ audit

    def append_audit(
        self,
        at: float,
        actor: str,
        action: str,
        *,
        product_id: int | None = None,
        device_id: str | None = None,
        reason: str = "",
        detail: dict[str, object] | None = None,
    ) -> None:
        self._w.execute(
            "INSERT INTO audit (at, actor, action, product_id, device_id, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, actor, action, product_id, device_id, reason, json.dumps(detail or {}, default=str)),
        )

    def list_audit(
        self,
        product_id: int | None = None,
        device_id: str | None = None,
        after_id: int = 0,
        limit: int = 100,
        *,
        actor: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
    ) -> list[AuditRecord]:
        """Oldest first: after `after_id`, or the `limit` entries just before `before_id`."""
        sql, args, reverse = window_by_id(
            "SELECT id, at, actor, action, product_id, device_id, reason, detail FROM audit",
            {"product_id": product_id, "device_id": device_id, "actor": actor, "action": action},
            after_id=after_id, before_id=before_id, limit=limit,
        )  # fmt: skip
        out = [
            AuditRecord(i, at, actor, action, product, device, reason, json.loads(detail))
            for (i, at, actor, action, product, device, reason, detail) in self._q.execute(sql, args)
        ]
        return out[::-1] if reverse else out
