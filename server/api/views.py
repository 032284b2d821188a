"""Records to response bodies. The `read_*` functions run in the store's reader thread, so
one request costs one hop off the event loop however many rows it touches."""

from __future__ import annotations

from ..logs import iso as iso  # re-exported: views are where routes find it
from ..rules.model import ListState, Owner
from ..store import Store
from ..store.records import AuditRecord, CustomerRecord, DeviceQuery, DeviceRecord, ProductRecord, UserRecord
from .models import AuditOut, CustomerOut, DeviceCounts, DeviceOut, ProductOut, UserOut

_SHOWN_STATES = (ListState.QUARANTINED, ListState.DENIED)


def iso_or_none(t: float | None) -> str | None:
    return None if t is None else iso(t)


def product_out(product: ProductRecord, counts: DeviceCounts | None = None) -> ProductOut:
    return ProductOut(
        id=product.id,
        slug=product.slug,
        name=product.name,
        policy=product.policy,
        created_at=iso(product.created_at),
        device_counts=counts,
    )


def user_out(user: UserRecord) -> UserOut:
    return UserOut(id=user.id, username=user.username, admin=user.is_admin, created_at=iso(user.created_at))


def customer_out(customer: CustomerRecord) -> CustomerOut:
    return CustomerOut(id=customer.id, username=customer.username, created_at=iso(customer.created_at))


def audit_out(entry: AuditRecord) -> AuditOut:
    return AuditOut(
        id=entry.id,
        at=iso(entry.at),
        actor=entry.actor,
        action=entry.action,
        device_id=entry.device_id,
        reason=entry.reason,
        detail=entry.detail,
    )


class _Owners:
    """Owner labels ("user:NAME"), looked up once per owner per request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[Owner, str | None] = {}

    def label(self, owner: Owner | None) -> str | None:
        if owner is None:
            return None
        if owner not in self.cache:
            record = self.store.get_user(owner.id) if owner.kind == "user" else self.store.get_customer(owner.id)
            self.cache[owner] = f"{owner.kind}:{record.username}" if record else f"{owner.kind}:#{owner.id}"
        return self.cache[owner]


def device_out(record: DeviceRecord, owners: _Owners, listed_in: int | None, state: ListState | None) -> DeviceOut:
    """`listed_in`: the product whose devices are shown (None for a product-less view). In a
    product's view product_id is that product, for members and for devices on its lists alike
    (as Particle shows a quarantined device); `mismatch` tells when it belongs elsewhere."""
    product_id = record.product_id if listed_in is None else listed_in
    fw = record.firmware_product_id
    return DeviceOut(
        id=record.device_id,
        name=record.name,
        product_id=product_id,
        platform_id=record.platform_id,
        firmware_version=record.firmware_version,
        online=record.online,
        connected=record.online,
        last_heard=iso_or_none(record.last_heard),
        last_handshake_at=iso_or_none(record.last_handshake_at),
        quarantined=state is ListState.QUARANTINED,
        denied=state is ListState.DENIED,
        development=record.development,
        groups=[],
        notes=record.notes,
        owner=owners.label(record.owner),
        firmware_product_id=fw,
        # As admission flags it: the device belongs to a product other than the one its firmware names.
        mismatch=fw is not None and record.product_id is not None and fw != record.product_id,
    )


def read_product_device(store: Store, product_id: int, device_id: str) -> DeviceOut | None:
    """The device as product `product_id` sees it: a member, or on its quarantine or Denied list."""
    record = store.get_device(device_id)
    if record is None:
        return None
    state = store.list_state(product_id, device_id)
    if record.product_id != product_id and state not in _SHOWN_STATES:
        return None
    return device_out(record, _Owners(store), product_id, state)


def read_product_devices(
    store: Store, product_id: int, status: str | None, offset: int, limit: int, query: DeviceQuery | None = None
) -> tuple[list[DeviceOut], int]:
    rows, total = store.product_devices(product_id, status, offset, limit, query)
    owners = _Owners(store)
    return [device_out(record, owners, product_id, state) for record, state in rows], total


def read_device_counts(store: Store, product_id: int) -> DeviceCounts:
    counts = {s: store.product_devices(product_id, s, 0, 0)[1] for s in ("approved", "quarantined", "denied")}
    return DeviceCounts(**counts)


def team_products(store: Store, user_id: int) -> frozenset[int]:
    """The products whose team the user is on."""
    return frozenset(p.id for p in store.list_products() if store.role_of(p.id, user_id) is not None)


def read_devices(store: Store, visible: frozenset[int] | None, owner: Owner | None) -> list[DeviceOut]:
    """All registered devices (visible=None), or those in `visible` products or owned by `owner`."""
    owners = _Owners(store)
    return [
        device_out(record, owners, None, None)
        for record in store.list_devices()
        if visible is None or record.product_id in visible or (owner is not None and record.owner == owner)
    ]


def read_visible_device(store: Store, device_id: str, user_id: int, admin: bool) -> DeviceOut | None:
    """One device, product-less view, if the user is an admin, its owner, or on its product's team."""
    record = store.get_device(device_id)
    if record is None:
        return None
    on_team = record.product_id is not None and store.role_of(record.product_id, user_id) is not None
    if admin or on_team or record.owner == Owner("user", user_id):
        return device_out(record, _Owners(store), None, None)
    return None
