"""Every domain's queries in one class: what both engines mix in (SQLiteStore directly; PostgresStore
behind its PostgresQueries, which overrides the few that PostgreSQL spells differently)."""

from __future__ import annotations

from .admin import AdminQueries
from .claims import ClaimQueries
from .devices import DeviceQueries
from .firmware import FirmwareQueries
from .hub import HubQueries
from .live import LiveSessionQueries
from .ota import OtaQueries
from .rollouts import RolloutQueries
from .webhook_deliveries import WebhookDeliveryQueries
from .webhooks import WebhookQueries


class DomainQueries(
    LiveSessionQueries,
    DeviceQueries,
    WebhookDeliveryQueries,
    WebhookQueries,
    ClaimQueries,
    RolloutQueries,
    OtaQueries,
    FirmwareQueries,
    HubQueries,
    AdminQueries,
):
    pass
