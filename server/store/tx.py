"""The write side of the storage interface: what a write op may do, inside the writer's transaction.

Only `WriteOp.apply` (store/writeop.py) is handed a `StoreTx`; everything else holds a `Store`
(store/base.py), whose type has no write methods, so a write outside a transaction does not
type-check. Reads made through a `StoreTx` see the transaction's own writes.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

from ..rules.model import ListState, Owner, Policy, Role
from ..rules.rollout_model import Rollout, RolloutDevice
from ..rules.webhook_model import WebhookSpec
from .hooks import CommitHooks
from .reads import StoreReads
from .records import (
    CustomerRecord,
    EventRecord,
    FirmwareRecord,
    GroupRecord,
    ImportResult,
    OtaOutcome,
    ProductRecord,
    TokenRecord,
    UserRecord,
)
from .webhook_records import DeliveryUpdate


class StoreTx(StoreReads, CommitHooks):
    """Reads through the transaction, the writes, and `after_commit` (hooks.py)."""

    # -- the cluster bus
    @abc.abstractmethod
    def notice(self, channel: str, payload: str) -> None:
        """Send `payload` on `channel` to every node's listener if and only if this transaction
        commits, in commit order (PostgreSQL: pg_notify). A store that serves one process only
        raises NotImplementedError: there, `after_commit` reaches everything that listens."""

    # -- live sessions across nodes (see sqlite/live.py)
    @abc.abstractmethod
    def claim_live_session(self, device_id: str, node_id: str, counter: int, at: float) -> str | None: ...

    @abc.abstractmethod
    def set_live_privileges(self, device_id: str, node_id: str, privileges: int, product_id: int | None) -> None: ...

    @abc.abstractmethod
    def release_live_session(self, device_id: str, node_id: str) -> bool: ...

    @abc.abstractmethod
    def release_node_sessions(self, node_id: str) -> int: ...

    @abc.abstractmethod
    def save_publish_bucket(self, device_id: str, tokens: float, at: float) -> None: ...

    # -- devices and events
    @abc.abstractmethod
    def add_device_keys(self, rows: Iterable[tuple[str, bytes]], now: float) -> ImportResult: ...

    @abc.abstractmethod
    def mark_connected(
        self,
        device_id: str,
        *,
        counter: int,
        firmware_version: int,
        platform_id: int,
        firmware_product_id: int | None,
        at: float,
    ) -> None: ...

    @abc.abstractmethod
    def mark_disconnected(self, device_id: str, at: float) -> None: ...

    @abc.abstractmethod
    def append_event(self, event: EventRecord) -> int: ...

    def append_events(self, events: Sequence[EventRecord]) -> list[int]:
        """Append events in order; their IDs, in the same order (increasing)."""
        return [self.append_event(event) for event in events]

    @abc.abstractmethod
    def index_device_events_if_due(self, first_id: int, last_id: int) -> None:
        """After appending events first_id..last_id: add the events since the last time to the
        per-device index when these passed a step (sqlite/device_events.py). Readers are right
        either way; this bounds what they scan unindexed."""

    # -- OTA outcomes (see sqlite/ota.py)
    @abc.abstractmethod
    def set_ota_outcome(self, outcome: OtaOutcome) -> None: ...

    # -- products, people, tokens, lists, audit (see sqlite/admin.py)
    @abc.abstractmethod
    def insert_product(
        self, product_id: int | None, slug: str, name: str, policy: Policy, at: float
    ) -> ProductRecord: ...

    @abc.abstractmethod
    def update_product(self, product_id: int, *, name: str | None = None, policy: Policy | None = None) -> None: ...

    @abc.abstractmethod
    def insert_user(self, username: str, password_hash: str, is_admin: bool, at: float) -> UserRecord: ...

    @abc.abstractmethod
    def team_set(self, product_id: int, user_id: int, role: Role) -> None: ...

    @abc.abstractmethod
    def team_remove(self, product_id: int, user_id: int) -> bool: ...

    @abc.abstractmethod
    def insert_customer(self, product_id: int, username: str, password_hash: str, at: float) -> CustomerRecord: ...

    @abc.abstractmethod
    def insert_token(self, token: TokenRecord) -> None: ...

    @abc.abstractmethod
    def delete_token(self, token_hash: bytes) -> bool: ...

    @abc.abstractmethod
    def delete_grant(self, token_hash: bytes) -> int: ...

    @abc.abstractmethod
    def set_list_state(self, product_id: int, device_id: str, state: ListState | None, at: float) -> None: ...

    @abc.abstractmethod
    def leave_denied_lists(self, device_id: str) -> int: ...

    @abc.abstractmethod
    def ensure_device(self, device_id: str, at: float) -> None: ...

    @abc.abstractmethod
    def set_membership(self, device_id: str, product_id: int | None) -> None: ...

    @abc.abstractmethod
    def set_owner(self, device_id: str, owner: Owner | None) -> None: ...

    @abc.abstractmethod
    def update_device_fields(self, device_id: str, fields: dict[str, object]) -> None: ...

    @abc.abstractmethod
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
    ) -> None: ...

    # -- firmware, device groups, releases and locks (see sqlite/firmware.py). A device that
    # leaves its product leaves that product's groups and loses its firmware lock.
    @abc.abstractmethod
    def insert_firmware(self, record: FirmwareRecord) -> None:
        """Raises Conflict (field "version") when the product has that version."""

    @abc.abstractmethod
    def put_firmware_blob(self, sha256: str, data: bytes) -> None:
        """Store a binary under its SHA-256 (the caller computed it from `data`); kept as it is
        if already stored."""

    @abc.abstractmethod
    def delete_firmware(self, product_id: int, version: int) -> bool:
        """Its binary goes too when no other version (of any product) uses it."""

    @abc.abstractmethod
    def update_firmware_info(self, product_id: int, version: int, title: str, description: str) -> bool:
        """Changes a version's title and description; False when there is no such version."""

    @abc.abstractmethod
    def release_firmware(
        self,
        product_id: int,
        version: int,
        *,
        product_default: bool,
        groups: Sequence[str],
        intelligent: bool,
        at: float,
        actor: str,
    ) -> None:
        """Make `version` released to exactly these targets: it takes the product default (if
        asked) and each named group from whatever version had them, and loses targets not named."""

    @abc.abstractmethod
    def insert_group(self, product_id: int, name: str, description: str, at: float) -> GroupRecord:
        """Raises Conflict (field "name") when the product has a group of that name."""

    @abc.abstractmethod
    def delete_group(self, product_id: int, name: str) -> bool:
        """Its memberships and its release go with it."""

    @abc.abstractmethod
    def set_device_groups(self, product_id: int, device_id: str, names: Sequence[str]) -> None:
        """The device is in exactly these (existing) groups of the product afterwards."""

    @abc.abstractmethod
    def set_firmware_lock(self, product_id: int, device_id: str, version: int | None, at: float, actor: str) -> None:
        """Lock the device to an uploaded version of the product's firmware, or unlock (None)."""

    # -- rollouts (see sqlite/rollouts.py). At most one unfinished rollout per product.
    @abc.abstractmethod
    def insert_rollout(self, rollout: Rollout, devices: Iterable[tuple[str, int]]) -> int: ...

    @abc.abstractmethod
    def update_rollout(self, rollout: Rollout) -> None: ...

    @abc.abstractmethod
    def update_rollout_devices(self, rows: Iterable[RolloutDevice]) -> None: ...

    @abc.abstractmethod
    def clear_rollout_assignments(self, product_id: int, keep: int | None = None) -> int: ...

    @abc.abstractmethod
    def restart_rollout_clocks(self, at: float) -> int: ...

    # -- claim codes (see sqlite/claims.py); codes are stored by their SHA-256 only
    @abc.abstractmethod
    def insert_claim_code(
        self, code_hash: bytes, product_id: int, customer_id: int, created_at: float, expires_at: float
    ) -> None: ...

    @abc.abstractmethod
    def spend_claim_code(self, code_hash: bytes, device_id: str, at: float) -> None: ...

    # -- webhooks (see sqlite/webhooks.py)
    @abc.abstractmethod
    def insert_webhook(self, product_id: int, spec: WebhookSpec, secret: str, at: float, by: str) -> int: ...

    @abc.abstractmethod
    def update_webhook(self, webhook_id: int, spec: WebhookSpec) -> None: ...

    @abc.abstractmethod
    def delete_webhook(self, webhook_id: int) -> None: ...

    # -- webhook delivery (see sqlite/webhook_deliveries.py)
    @abc.abstractmethod
    def set_webhook_cursor(self, event_id: int) -> None:
        """Move the dispatch cursor forward to `event_id` (never back)."""

    @abc.abstractmethod
    def insert_deliveries(self, rows: Iterable[tuple[int, int]], at: float) -> int:
        """(webhook_id, event_id) pairs, pending and due at `at`; a pair already stored stays as it
        is. Counts each new one as triggered; how many were new."""

    @abc.abstractmethod
    def update_delivery(self, update: DeliveryUpdate) -> None:
        """An attempt's outcome: the delivery's state, the attempt in the history, the counters."""

    @abc.abstractmethod
    def prune_deliveries(self, succeeded_before: float, failed_before: float, limit: int) -> int:
        """Delete up to `limit` finished deliveries last updated before these times; how many went."""
