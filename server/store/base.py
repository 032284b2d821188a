"""The storage interface. Implementations are synchronous; `AsyncStore` keeps them off the event loop.

Reads may run concurrently with the single writer; all writes go through `write_batch`, which
applies a list of operations in one transaction (the writer service batches them).

Over 400 lines, knowingly: this is the one abstract Store of every domain (devices, people, firmware,
rollouts, webhooks, events) with its records. Issue 13's phase B splits it, with records.py and a typed,
public write side; until then the whole interface reads in one place.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from ..rollouts.model import Rollout, RolloutCandidate, RolloutDevice, RolloutDeviceFacts
from ..rules.admission import DeviceFacts, ProductFacts
from ..rules.model import ListState, Owner, Policy, Role
from ..webhooks.model import Webhook, WebhookSpec
from .hooks import CommitHooks

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """Filters and order for a product's device list (Particle's listDevices query)."""

    device_id: str = ""  # part of the ID (Particle matches partially)
    name: str = ""  # part of the name, any case
    groups: tuple[str, ...] = ()  # in any of these groups of the product
    sort: str | None = None  # "device_id", "firmware_version", "last_heard" or "name"; None: oldest first
    descending: bool = False


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device_id: str  # 24 lowercase hex characters
    public_key: bytes | None  # X25519, 32 bytes; None until provisioned (the device cannot connect)
    created_at: float
    owner: Owner | None = None
    platform_id: int | None = None
    product_id: int | None = None  # the product the device is a member of (the "cloud" product)
    firmware_version: int | None = None
    firmware_product_id: int | None = None  # what the firmware reported at its last connection
    last_heard: float | None = None
    last_handshake_at: float | None = None
    online: bool = False
    last_counter: int = 0
    development: bool = False
    name: str | None = None
    notes: str | None = None


CAME_BACK_ON_OLD = "came back running"  # prefix of the failed reason that stops re-offering an image


@dataclass(frozen=True, slots=True)
class OtaOutcome:
    """The last OTA outcome of one device: `installed` (verified, awaiting its next HELLO),
    `confirmed` (it came back running the version) or `failed` (with the reason)."""

    device_id: str
    product_id: int
    version: int
    state: str
    reason: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class ProductRecord:
    id: int
    slug: str
    name: str
    policy: Policy
    created_at: float


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    is_admin: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    id: int
    product_id: int
    username: str
    password_hash: str
    created_at: float


@dataclass(frozen=True, slots=True)
class TeamMember:
    product_id: int
    user_id: int
    username: str
    role: Role


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_hash: bytes
    user_id: int | None
    customer_id: int | None
    scopes: frozenset[str]
    client: str
    created_at: float
    expires_at: float | None
    refresh: bool = False
    grant_id: str | None = None  # shared by an access token and the refresh token issued with it


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: float
    actor: str
    action: str
    product_id: int | None
    device_id: str | None
    reason: str
    detail: dict[str, object]


@dataclass(frozen=True, slots=True)
class EventRecord:
    device_id: str
    name: str
    data: bytes
    ttl: int
    private: bool
    published_at: float
    product_id: int | None = None  # set only when the device held the product_events privilege
    id: int | None = None  # assigned by the store
    to_device: str | None = None  # a cloud event for this one device (hook responses); device_id is it too
    webhooks: bool = False  # the publisher held the webhooks privilege: decided at publish, not stored

    def with_id(self, event_id: int) -> EventRecord:
        """This event as stored, with its ID: `dataclasses.replace(self, id=event_id)`, at a
        fraction of its cost (once per published event)."""
        return EventRecord(
            self.device_id, self.name, self.data, self.ttl, self.private, self.published_at,
            self.product_id, event_id, self.to_device, self.webhooks,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class FirmwareRecord:
    product_id: int
    version: int  # 1..65535
    title: str
    description: str
    name: str  # the uploaded file's name, for display; the stored file's path is derived, never this
    size: int
    sha256: str  # 64 lowercase hex characters
    signature: bytes | None  # detached Ed25519 signature over the whole binary, as uploaded
    platform_id: int
    uploaded_at: float
    uploaded_by: str  # the actor, as in the audit trail
    released_at: float | None = None  # the latest release that left it released; None while unreleased
    # Where it is released now (filled in by reads; ignored by _insert_firmware).
    product_default: bool = False
    groups: tuple[str, ...] = ()
    intelligent: bool = False

    @property
    def released(self) -> bool:
        return self.released_at is not None


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: int
    product_id: int
    name: str  # [a-z0-9_-]{1,64}, unique in its product
    description: str
    created_at: float
    device_count: int = 0
    fw_version: int | None = None  # the version released to this group, if any
    intelligent: bool = False


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    product_id: int
    version: int
    group: str | None  # None: the product default
    intelligent: bool
    released_at: float
    released_by: str


@dataclass(frozen=True, slots=True)
class FirmwareTargetFacts:
    """Everything the target rule needs about one device in one product, read at once."""

    locked_version: int | None  # desired_firmware_version: overrides every release
    product_default: ReleaseRecord | None
    group_releases: tuple[ReleaseRecord, ...]  # releases to groups the device is in
    groups: tuple[str, ...]  # the device's groups in the product

    @property
    def group_versions(self) -> frozenset[int]:
        return frozenset(r.version for r in self.group_releases)

    @property
    def default_version(self) -> int | None:
        return None if self.product_default is None else self.product_default.version


@dataclass(slots=True)
class ImportResult:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (device_id or line, reason)


class WriteOp(abc.ABC):
    """One write, applied inside the writer's transaction; returns its result (or raises)."""

    # True: `write_batch` may hand a run of consecutive ops of this class to `apply_group` at
    # once (one statement for many rows) instead of applying them one by one.
    groupable: ClassVar[bool] = False
    # True: a few index lookups and row writes at most, so that a small batch of such ops may be
    # applied on the event loop itself (`Store.write_batch_now`).
    small: ClassVar[bool] = False

    @abc.abstractmethod
    def apply(self, store: Store) -> object: ...

    @classmethod
    def apply_group(cls, store: Store, ops: Sequence[WriteOp]) -> list[object]:
        """Apply ops of this class together: each op's result, in order. All or nothing: where
        it raises, the store undoes the group and applies the ops one by one, so that only the
        op at fault fails."""
        return [op.apply(store) for op in ops]


class Store(CommitHooks, abc.ABC):
    def read_on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a small read on the calling (event loop) thread, on a connection of its own where
        the store has several (see AsyncStore.read_now)."""
        return fn(*args)

    @abc.abstractmethod
    def get_device(self, device_id: str) -> DeviceRecord | None: ...

    @abc.abstractmethod
    def list_devices(self) -> list[DeviceRecord]: ...

    @abc.abstractmethod
    def list_events(
        self, device_id: str | None = None, after_id: int = 0, limit: int = 1000, product_id: int | None = None
    ) -> list[EventRecord]:
        """Oldest first; `product_id`: only events routed to that product's stream."""

    # -- writes (call inside write_batch, or use the convenience wrappers)
    @abc.abstractmethod
    def write_batch(self, ops: Sequence[WriteOp]) -> list[object]:
        """Apply ops in one transaction; each op's result, or the Exception it raised (that op
        alone is rolled back), in order."""

    def write_batch_now(self, ops: Sequence[WriteOp]) -> list[object] | None:
        """`write_batch` on the calling thread (the event loop), for a small batch of small ops,
        where that costs no wait: None, with nothing applied, where it would wait (another
        process holds the write lock) or do slow upkeep (a WAL checkpoint) first; the caller
        then runs `write_batch` in a worker thread. This default never applies on the loop."""
        return None

    @abc.abstractmethod
    def import_devices(self, rows: Iterable[tuple[str, bytes]], now: float) -> ImportResult: ...

    @abc.abstractmethod
    def _import_devices(self, rows: Iterable[tuple[str, bytes]], now: float) -> ImportResult: ...

    @abc.abstractmethod
    def _mark_connected(
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
    def _mark_disconnected(self, device_id: str, at: float) -> None: ...

    @abc.abstractmethod
    def _append_event(self, event: EventRecord) -> int: ...

    def _append_events(self, events: Sequence[EventRecord]) -> list[int]:
        """Append events in order; their IDs, in the same order (increasing)."""
        return [self._append_event(event) for event in events]

    @abc.abstractmethod
    def reset_online(self) -> int:
        """Mark every device offline (at startup: no session survives a restart)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    # -- OTA outcomes (see sqlite_ota.py)
    @abc.abstractmethod
    def ota_outcome(self, device_id: str) -> OtaOutcome | None: ...

    @abc.abstractmethod
    def _set_ota_outcome(self, outcome: OtaOutcome) -> None: ...

    # -- products, people, tokens, lists, audit (see sqlite_admin.py)
    @abc.abstractmethod
    def get_product(self, key: int | str) -> ProductRecord | None: ...

    @abc.abstractmethod
    def list_products(self) -> list[ProductRecord]: ...

    @abc.abstractmethod
    def _insert_product(
        self, product_id: int | None, slug: str, name: str, policy: Policy, at: float
    ) -> ProductRecord: ...

    @abc.abstractmethod
    def _update_product(self, product_id: int, *, name: str | None = None, policy: Policy | None = None) -> None: ...

    @abc.abstractmethod
    def get_user(self, user_id: int) -> UserRecord | None: ...

    @abc.abstractmethod
    def get_user_by_name(self, username: str) -> UserRecord | None: ...

    @abc.abstractmethod
    def list_users(self) -> list[UserRecord]: ...

    @abc.abstractmethod
    def _insert_user(self, username: str, password_hash: str, is_admin: bool, at: float) -> UserRecord: ...

    @abc.abstractmethod
    def team_of(self, product_id: int) -> list[TeamMember]: ...

    @abc.abstractmethod
    def role_of(self, product_id: int, user_id: int) -> Role | None: ...

    @abc.abstractmethod
    def _team_set(self, product_id: int, user_id: int, role: Role) -> None: ...

    @abc.abstractmethod
    def _team_remove(self, product_id: int, user_id: int) -> bool: ...

    @abc.abstractmethod
    def get_customer(self, customer_id: int) -> CustomerRecord | None: ...

    @abc.abstractmethod
    def get_customer_by_name(self, product_id: int, username: str) -> CustomerRecord | None: ...

    @abc.abstractmethod
    def find_customers(self, username: str) -> list[CustomerRecord]: ...

    @abc.abstractmethod
    def list_customers(self, product_id: int) -> list[CustomerRecord]: ...

    @abc.abstractmethod
    def _insert_customer(self, product_id: int, username: str, password_hash: str, at: float) -> CustomerRecord: ...

    @abc.abstractmethod
    def get_token(self, token_hash: bytes) -> TokenRecord | None: ...

    @abc.abstractmethod
    def list_tokens(self, user_id: int) -> list[TokenRecord]: ...

    @abc.abstractmethod
    def _insert_token(self, token: TokenRecord) -> None: ...

    @abc.abstractmethod
    def _delete_token(self, token_hash: bytes) -> bool: ...

    @abc.abstractmethod
    def _delete_grant(self, token_hash: bytes) -> int: ...

    @abc.abstractmethod
    def list_state(self, product_id: int, device_id: str) -> ListState | None: ...

    @abc.abstractmethod
    def admission_facts(
        self, device_id: str, fw_product_id: int | None
    ) -> tuple[DeviceRecord | None, DeviceFacts, ProductFacts | None]: ...

    @abc.abstractmethod
    def product_devices(
        self, product_id: int, status: str | None, offset: int, limit: int, query: DeviceQuery | None = None
    ) -> tuple[list[tuple[DeviceRecord, ListState | None]], int]: ...

    @abc.abstractmethod
    def live_product_ids(self, device_id: str) -> list[int]: ...

    @abc.abstractmethod
    def _set_list_state(self, product_id: int, device_id: str, state: ListState | None, at: float) -> None: ...

    @abc.abstractmethod
    def _leave_denied_lists(self, device_id: str) -> int: ...

    @abc.abstractmethod
    def _ensure_device(self, device_id: str, at: float) -> None: ...

    @abc.abstractmethod
    def _set_membership(self, device_id: str, product_id: int | None) -> None: ...

    @abc.abstractmethod
    def _set_owner(self, device_id: str, owner: Owner | None) -> None: ...

    @abc.abstractmethod
    def _update_device_fields(self, device_id: str, fields: dict[str, object]) -> None: ...

    @abc.abstractmethod
    def _append_audit(
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

    @abc.abstractmethod
    def list_audit(
        self, product_id: int | None = None, device_id: str | None = None, after_id: int = 0, limit: int = 100
    ) -> list[AuditRecord]: ...

    # -- firmware, device groups, releases and locks (see sqlite_firmware.py). A device that
    # leaves its product leaves that product's groups and loses its firmware lock.
    @abc.abstractmethod
    def get_firmware(self, product_id: int, version: int) -> FirmwareRecord | None: ...

    @abc.abstractmethod
    def list_firmware(self, product_id: int) -> list[FirmwareRecord]:
        """Oldest version first."""

    @abc.abstractmethod
    def _insert_firmware(self, record: FirmwareRecord) -> None:
        """Raises Conflict (field "version") when the product has that version."""

    @abc.abstractmethod
    def _delete_firmware(self, product_id: int, version: int) -> bool: ...

    @abc.abstractmethod
    def _update_firmware_info(self, product_id: int, version: int, title: str, description: str) -> bool:
        """Changes a version's title and description; False when there is no such version."""

    @abc.abstractmethod
    def list_releases(self, product_id: int) -> list[ReleaseRecord]: ...

    @abc.abstractmethod
    def _release_firmware(
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
    def get_group(self, product_id: int, name: str) -> GroupRecord | None: ...

    @abc.abstractmethod
    def list_groups(self, product_id: int) -> list[GroupRecord]: ...

    @abc.abstractmethod
    def _insert_group(self, product_id: int, name: str, description: str, at: float) -> GroupRecord:
        """Raises Conflict (field "name") when the product has a group of that name."""

    @abc.abstractmethod
    def _delete_group(self, product_id: int, name: str) -> bool:
        """Its memberships and its release go with it."""

    @abc.abstractmethod
    def device_groups(self, product_id: int, device_id: str) -> list[str]: ...

    @abc.abstractmethod
    def _set_device_groups(self, product_id: int, device_id: str, names: Sequence[str]) -> None:
        """The device is in exactly these (existing) groups of the product afterwards."""

    @abc.abstractmethod
    def firmware_lock(self, product_id: int, device_id: str) -> int | None: ...

    @abc.abstractmethod
    def firmware_locks_on(self, product_id: int, version: int) -> list[str]:
        """Devices locked to this version."""

    @abc.abstractmethod
    def _set_firmware_lock(self, product_id: int, device_id: str, version: int | None, at: float, actor: str) -> None:
        """Lock the device to an uploaded version of the product's firmware, or unlock (None)."""

    @abc.abstractmethod
    def firmware_target_facts(self, product_id: int, device_id: str) -> FirmwareTargetFacts: ...

    # -- rollouts (see sqlite_rollouts.py). At most one unfinished rollout per product.
    @abc.abstractmethod
    def get_rollout(self, product_id: int, rollout_id: int) -> Rollout | None: ...

    @abc.abstractmethod
    def list_rollouts(self, product_id: int) -> list[Rollout]:
        """Newest first."""

    @abc.abstractmethod
    def active_rollouts(self) -> list[Rollout]:
        """Every unfinished rollout (running, paused, rolling back), of every product."""

    @abc.abstractmethod
    def rollout_devices(self, rollout_id: int, offset: int = 0, limit: int = -1) -> list[RolloutDevice]:
        """In offer order."""

    @abc.abstractmethod
    def rollout_rows(self, rollout_id: int, device_ids: Sequence[str]) -> dict[str, RolloutDevice]: ...

    @abc.abstractmethod
    def active_rollout_row(self, device_id: str) -> tuple[Rollout, RolloutDevice] | None: ...

    @abc.abstractmethod
    def rollout_assignment(self, product_id: int, device_id: str) -> int | None:
        """The version a rollout makes this device's target now (below a lock, above releases)."""

    @abc.abstractmethod
    def rollouts_needing_version(self, product_id: int, version: int) -> list[tuple[int, str]]:
        """(rollout ID, state) of the rollouts that still need this firmware version: unfinished ones
        that deliver it or may roll a device back to it, and any that holds it as a device's target."""

    @abc.abstractmethod
    def rollout_candidates(self, product_id: int, groups: Sequence[str] | None = None) -> list[RolloutCandidate]: ...

    @abc.abstractmethod
    def rollout_device_facts(self, product_id: int, device_ids: Sequence[str]) -> dict[str, RolloutDeviceFacts]: ...

    @abc.abstractmethod
    def _insert_rollout(self, rollout: Rollout, devices: Iterable[tuple[str, int]]) -> int: ...

    @abc.abstractmethod
    def _update_rollout(self, rollout: Rollout) -> None: ...

    @abc.abstractmethod
    def _update_rollout_devices(self, rows: Iterable[RolloutDevice]) -> None: ...

    @abc.abstractmethod
    def _clear_rollout_assignments(self, product_id: int, keep: int | None = None) -> int: ...

    @abc.abstractmethod
    def _restart_rollout_clocks(self, at: float) -> int: ...

    # -- claim codes (see sqlite_claims.py); codes are stored by their SHA-256 only
    @abc.abstractmethod
    def claim_code(self, code_hash: bytes) -> tuple[int, int, float, str | None] | None:
        """(product_id, customer_id, expires_at, claimed_device)."""

    @abc.abstractmethod
    def _insert_claim_code(
        self, code_hash: bytes, product_id: int, customer_id: int, created_at: float, expires_at: float
    ) -> None: ...

    @abc.abstractmethod
    def _spend_claim_code(self, code_hash: bytes, device_id: str, at: float) -> None: ...

    # -- webhooks (see sqlite_webhooks.py)
    @abc.abstractmethod
    def list_webhooks(self, product_id: int | None = None) -> list[Webhook]:
        """A product's webhooks by ID, or every product's (None)."""

    @abc.abstractmethod
    def _insert_webhook(self, product_id: int, spec: WebhookSpec, secret: str, at: float, by: str) -> int: ...

    @abc.abstractmethod
    def _update_webhook(self, webhook_id: int, spec: WebhookSpec) -> None: ...

    @abc.abstractmethod
    def _delete_webhook(self, webhook_id: int) -> None: ...
