"""What the store can be asked, in every domain: the read side of the storage interface.

Implementations are synchronous (`AsyncStore` keeps them off the event loop). Reads may run
concurrently with the single writer. Inside a write op the same methods read through the
transaction, so they see its own writes (`StoreTx`).
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence

from ..rules.admission import DeviceFacts, ProductFacts
from ..rules.firmware_target import ReleaseCandidate
from ..rules.model import ListState, Role
from ..rules.rollout_model import Rollout, RolloutCandidate, RolloutDevice, RolloutDeviceFacts
from ..rules.webhook_model import Webhook
from .records import (
    AuditRecord,
    CustomerRecord,
    DeviceQuery,
    DeviceRecord,
    EventRecord,
    FirmwareRecord,
    FirmwareTargetFacts,
    GroupRecord,
    HubCounts,
    OfferFacts,
    OtaOutcome,
    ProductRecord,
    ReleaseRecord,
    TeamMember,
    TokenRecord,
    UserRecord,
)
from .webhook_records import Delivery, DeliveryAttempt, DeliveryCounters, DueDelivery


class StoreReads(abc.ABC):
    @abc.abstractmethod
    def get_device(self, device_id: str) -> DeviceRecord | None: ...

    @abc.abstractmethod
    def list_devices(self) -> list[DeviceRecord]: ...

    @abc.abstractmethod
    def list_events(
        self, device_id: str | None = None, after_id: int = 0, limit: int = 1000, product_id: int | None = None
    ) -> list[EventRecord]:
        """Oldest first; `product_id`: only events routed to that product's stream."""

    @abc.abstractmethod
    def event_history(
        self,
        product_id: int,
        *,
        device_id: str | None = None,
        prefix: str | None = None,
        after_id: int = 0,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """The product stream's stored events, oldest first: after `after_id`, or the `limit` just
        before `before_id`; of one device, and with a name prefix, when given."""

    @abc.abstractmethod
    def publish_bucket_of(self, device_id: str) -> tuple[float, float] | None:
        """Cluster mode: what the device's publish bucket held when its last session ended (tokens, at)."""

    @abc.abstractmethod
    def leader_epoch(self) -> int | None:
        """Cluster mode: the leader's fencing epoch (None before any node led)."""

    @abc.abstractmethod
    def live_sessions_in(self, product_id: int) -> dict[str, int]:
        """Privileges of the live sessions (any node's) decided into `product_id` (cluster mode)."""

    # -- OTA outcomes (see sqlite/ota.py)
    @abc.abstractmethod
    def ota_outcome(self, device_id: str) -> OtaOutcome | None: ...

    # -- products, people, tokens, lists, audit (see sqlite/admin.py)
    @abc.abstractmethod
    def get_product(self, key: int | str) -> ProductRecord | None: ...

    @abc.abstractmethod
    def list_products(self) -> list[ProductRecord]: ...

    @abc.abstractmethod
    def get_user(self, user_id: int) -> UserRecord | None: ...

    @abc.abstractmethod
    def get_user_by_name(self, username: str) -> UserRecord | None: ...

    @abc.abstractmethod
    def list_users(self) -> list[UserRecord]: ...

    @abc.abstractmethod
    def team_of(self, product_id: int) -> list[TeamMember]: ...

    @abc.abstractmethod
    def role_of(self, product_id: int, user_id: int) -> Role | None: ...

    @abc.abstractmethod
    def get_customer(self, customer_id: int) -> CustomerRecord | None: ...

    @abc.abstractmethod
    def get_customer_by_name(self, product_id: int, username: str) -> CustomerRecord | None: ...

    @abc.abstractmethod
    def find_customers(self, username: str) -> list[CustomerRecord]: ...

    @abc.abstractmethod
    def list_customers(self, product_id: int) -> list[CustomerRecord]: ...

    @abc.abstractmethod
    def get_token(self, token_hash: bytes) -> TokenRecord | None: ...

    @abc.abstractmethod
    def list_tokens(self, user_id: int) -> list[TokenRecord]: ...

    @abc.abstractmethod
    def list_state(self, product_id: int, device_id: str) -> ListState | None: ...

    @abc.abstractmethod
    def admission_facts(
        self, device_id: str, fw_product_id: int | None
    ) -> tuple[DeviceRecord | None, DeviceFacts, ProductFacts | None]: ...

    @abc.abstractmethod
    def admission_facts_at(
        self, device_id: str, fw_product_id: int | None
    ) -> tuple[int | None, DeviceRecord | None, DeviceFacts, ProductFacts | None]:
        """`admission_facts` with the admission epoch first (None: unknown), read in one snapshot."""

    @abc.abstractmethod
    def admission_facts_many(
        self, requests: Sequence[tuple[str, int | None]]
    ) -> list[tuple[int | None, DeviceRecord | None, DeviceFacts, ProductFacts | None]]:
        """`admission_facts_at` for each (device ID, firmware product ID), in order: the HELLOs that
        arrive together (link/admission_reads.py). Each result's facts and epoch come from one
        statement (one snapshot); a statement reads up to 256 pairs."""

    @abc.abstractmethod
    def admission_epoch(self) -> int | None:
        """Moved, in the same transaction, by every change to a fact `admission_facts` reads."""

    @abc.abstractmethod
    def product_devices(
        self, product_id: int, status: str | None, offset: int, limit: int, query: DeviceQuery | None = None
    ) -> tuple[list[tuple[DeviceRecord, ListState | None]], int]: ...

    @abc.abstractmethod
    def live_product_ids(self, device_id: str) -> list[int]: ...

    # -- the devices hub (see sqlite/hub.py)
    @abc.abstractmethod
    def hub_counts(self, product_id: int) -> HubCounts: ...

    @abc.abstractmethod
    def status_audit(self, product_id: int, device_ids: Sequence[str]) -> dict[str, AuditRecord]:
        """For each device, the latest audit entry of this product that set its status."""

    @abc.abstractmethod
    def latest_audit_id(self, product_id: int) -> int: ...

    @abc.abstractmethod
    def device_audit(self, product_id: int, device_id: str, limit: int) -> list[AuditRecord]:
        """The device's audit entries in this product, newest first."""

    @abc.abstractmethod
    def latest_admission(self, product_id: int, device_id: str) -> AuditRecord | None: ...

    @abc.abstractmethod
    def recent_device_events(self, product_id: int, device_id: str, limit: int) -> list[EventRecord]:
        """The device's latest events in the product's stream, newest first."""

    @abc.abstractmethod
    def went_offline(self, product_id: int, after: float) -> list[tuple[str, float]]:
        """The product's members that went offline after `after` (device ID, when), oldest first."""

    @abc.abstractmethod
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

    # -- firmware, device groups, releases and locks (see sqlite/firmware.py). A device that
    # leaves its product leaves that product's groups and loses its firmware lock.
    @abc.abstractmethod
    def get_firmware(self, product_id: int, version: int) -> FirmwareRecord | None: ...

    @abc.abstractmethod
    def list_firmware(self, product_id: int) -> list[FirmwareRecord]:
        """Oldest version first."""

    @abc.abstractmethod
    def list_releases(self, product_id: int) -> list[ReleaseRecord]: ...

    @abc.abstractmethod
    def get_group(self, product_id: int, name: str) -> GroupRecord | None: ...

    @abc.abstractmethod
    def list_groups(self, product_id: int) -> list[GroupRecord]: ...

    @abc.abstractmethod
    def device_groups(self, product_id: int, device_id: str) -> list[str]: ...

    @abc.abstractmethod
    def firmware_lock(self, product_id: int, device_id: str) -> int | None: ...

    @abc.abstractmethod
    def firmware_locks_on(self, product_id: int, version: int) -> list[str]:
        """Devices locked to this version."""

    @abc.abstractmethod
    def firmware_target_facts(self, product_id: int, device_id: str) -> FirmwareTargetFacts: ...

    @abc.abstractmethod
    def offer_facts(self, product_id: int, device_id: str) -> OfferFacts:
        """In one statement, what the OTA offer on a connect decides on (link/ota_delivery.py)."""

    # -- firmware binaries by SHA-256 (see sqlite/firmware_blobs.py)
    @abc.abstractmethod
    def firmware_blob(self, sha256: str) -> bytes | None:
        """The binary whose SHA-256 (lowercase hex) this is, as uploaded; None if not stored."""

    @abc.abstractmethod
    def firmware_blob_digests(self) -> set[str]:
        """The SHA-256 of every stored binary."""

    @abc.abstractmethod
    def firmware_without_blob(self) -> list[tuple[int, int, str]]:
        """(product_id, version, sha256) of the versions whose binary is not stored (uploaded
        before migration 14: still a file in the data directory of the node that took it)."""

    @abc.abstractmethod
    def release_candidates(self, product_id: int) -> list[ReleaseCandidate]:
        """Every member of the product with what picks its firmware target (a release preview)."""

    # -- rollouts (see sqlite/rollouts.py). At most one unfinished rollout per product.
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
    def rollout_devices_in_state(
        self, rollout_id: int, state: str, offset: int, limit: int
    ) -> tuple[int, list[RolloutDevice]]:
        """How many of a rollout's devices are in `state`, and a page of them in offer order."""

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

    # -- claim codes (see sqlite/claims.py); codes are stored by their SHA-256 only
    @abc.abstractmethod
    def claim_code(self, code_hash: bytes) -> tuple[int, int, float, str | None] | None:
        """(product_id, customer_id, expires_at, claimed_device)."""

    # -- webhooks (see sqlite/webhooks.py)
    @abc.abstractmethod
    def list_webhooks(self, product_id: int | None = None) -> list[Webhook]:
        """A product's webhooks by ID, or every product's (None)."""

    # -- webhook delivery (see sqlite/webhook_deliveries.py)
    @abc.abstractmethod
    def webhook_cursor(self) -> int:
        """The last event ID the dispatcher has turned into deliveries."""

    @abc.abstractmethod
    def events_for_webhooks(self, after_id: int, product_ids: Collection[int], limit: int) -> list[EventRecord]:
        """Stored events of these products' streams whose publisher held the webhooks privilege, after
        `after_id`, oldest first."""

    @abc.abstractmethod
    def products_with_webhooks(self) -> list[int]: ...

    @abc.abstractmethod
    def last_event_id(self) -> int:
        """The highest event ID stored (0: none); inside a write, every event below it has committed."""

    @abc.abstractmethod
    def pending_deliveries(
        self, webhook_ids: Collection[int], limit: int, skip: Collection[int] = ()
    ) -> list[DueDelivery]:
        """Pending deliveries of these webhooks, the soonest due first (`next_at`, wall time);
        `skip`: delivery IDs already being sent."""

    @abc.abstractmethod
    def get_deliveries(self, webhook_id: int, state: str, limit: int) -> list[Delivery]:
        """The latest deliveries of a webhook in this state, oldest first."""

    @abc.abstractmethod
    def latest_attempts(self, webhook_id: int, ok: bool) -> list[DeliveryAttempt]:
        """The latest successful (or failed) requests of a webhook, oldest first."""

    @abc.abstractmethod
    def webhook_counters(self, webhook_ids: Collection[int]) -> dict[int, DeliveryCounters]: ...
