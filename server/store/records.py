"""The records the store reads and writes: plain frozen values, no behaviour beyond small views.

The domain's own models (rollouts, webhooks, admission facts) live in rules/; these are the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..rules.firmware_target import TargetFacts
from ..rules.model import Owner, Policy, Role


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """Filters and order for a product's device list (Particle's listDevices query)."""

    device_id: str = ""  # part of the ID (Particle matches partially)
    name: str = ""  # part of the name, any case
    groups: tuple[str, ...] = ()  # in any of these groups of the product
    sort: str | None = None  # "device_id", "firmware_version", "last_heard" or "name"; None: oldest first
    descending: bool = False
    firmware_version: int | None = None  # running this version (as it reported at its last connection)
    online: bool | None = None


@dataclass(frozen=True, slots=True)
class HubCounts:
    """A product's device counts: members (approved), online members, its lists, members by firmware."""

    members: int
    online: int
    quarantined: int
    denied: int
    by_firmware: tuple[tuple[int | None, int], ...]  # (version, members running it); None: never connected


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


@dataclass(frozen=True, slots=True, init=False)
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
    webhooks: bool = False  # the publisher held the webhooks privilege (stored: webhook dispatch reads it)

    def __init__(
        self,
        device_id: str,
        name: str,
        data: bytes,
        ttl: int,
        private: bool,
        published_at: float,
        product_id: int | None = None,
        id: int | None = None,
        to_device: str | None = None,
        webhooks: bool = False,
    ) -> None:
        # The dataclass's own __init__ for a frozen class sets each field by object.__setattr__,
        # about 4x the cost of the slots' own setters; a record is built twice per published event.
        _set_device_id(self, device_id)
        _set_name(self, name)
        _set_data(self, data)
        _set_ttl(self, ttl)
        _set_private(self, private)
        _set_published_at(self, published_at)
        _set_product_id(self, product_id)
        _set_id(self, id)
        _set_to_device(self, to_device)
        _set_webhooks(self, webhooks)

    def with_id(self, event_id: int) -> EventRecord:
        """This event as stored, with its ID: `dataclasses.replace(self, id=event_id)`, at a
        fraction of its cost (once per published event)."""
        return EventRecord(
            self.device_id, self.name, self.data, self.ttl, self.private, self.published_at,
            self.product_id, event_id, self.to_device, self.webhooks,
        )  # fmt: skip


def _slot_setter(name: str) -> Callable[[EventRecord, Any], None]:
    setter: Callable[[EventRecord, Any], None] = EventRecord.__dict__[name].__set__
    return setter


(
    _set_device_id, _set_name, _set_data, _set_ttl, _set_private, _set_published_at,
    _set_product_id, _set_id, _set_to_device, _set_webhooks,
) = (_slot_setter(f.name) for f in fields(EventRecord))  # fmt: skip


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


@dataclass(frozen=True, slots=True)
class OfferFacts:
    """What the OTA offer on a connect decides on, read in one statement (`Store.offer_facts`):
    the target rule's inputs and the device's last OTA outcome (version and reason), if any."""

    target: TargetFacts
    last_version: int | None
    last_reason: str


@dataclass(slots=True)
class ImportResult:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (device_id or line, reason)
