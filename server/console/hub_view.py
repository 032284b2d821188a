"""What the devices hub and the device page show, read in one hop to the store's reader thread."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.models import DeviceOut
from ..api.views import read_product_devices
from ..api.views_device_firmware import with_firmware
from ..store import Store
from ..store.records import AuditRecord, DeviceQuery, EventRecord, GroupRecord, HubCounts

CALLOUT_ROWS = 100  # quarantined and denied devices shown in their sections (the rest: filter by status)
HISTORY_ROWS = 50
EVENT_ROWS = 20


@dataclass(frozen=True, slots=True)
class DeviceList:
    devices: list[DeviceOut]
    total: int


@dataclass(frozen=True, slots=True)
class Hub:
    counts: HubCounts
    quarantined: DeviceList
    denied: DeviceList
    listed: DeviceList  # the filtered, sorted page
    reasons: dict[str, AuditRecord]  # the audit entry behind each shown device's status
    groups: list[GroupRecord] = field(default_factory=list)


def _page(store: Store, product_id: int, status: str | None, offset: int, limit: int, query: DeviceQuery) -> DeviceList:
    devices, total = read_product_devices(store, product_id, status, offset, limit, query)
    return DeviceList(devices, total)


def read_hub(store: Store, product_id: int, status: str | None, query: DeviceQuery, offset: int, limit: int) -> Hub:
    quarantined = _page(store, product_id, "quarantined", 0, CALLOUT_ROWS, DeviceQuery())
    denied = _page(store, product_id, "denied", 0, CALLOUT_ROWS, DeviceQuery())
    listed = _page(store, product_id, status, offset, limit, query)
    shown = {d.id for d in (*quarantined.devices, *denied.devices, *listed.devices)}
    return Hub(
        counts=store.hub_counts(product_id),
        quarantined=quarantined,
        denied=denied,
        listed=listed,
        reasons=store.status_audit(product_id, sorted(shown)),
        groups=store.list_groups(product_id),
    )


@dataclass(frozen=True, slots=True)
class DevicePage:
    device: DeviceOut
    reason: AuditRecord | None
    admission: AuditRecord | None  # what its connection was last told
    history: list[AuditRecord]
    events: list[EventRecord]
    groups: list[GroupRecord]
    versions: list[int]  # the product's uploaded firmware versions (to lock to)


def read_device_page(store: Store, product_id: int, device: DeviceOut) -> DevicePage:
    return DevicePage(
        device=with_firmware(store, product_id, device),
        reason=store.status_audit(product_id, [device.id]).get(device.id),
        admission=store.latest_admission(product_id, device.id),
        history=store.device_audit(product_id, device.id, HISTORY_ROWS),
        events=store.recent_device_events(product_id, device.id, EVENT_ROWS),
        groups=store.list_groups(product_id),
        versions=[f.version for f in store.list_firmware(product_id)],
    )
