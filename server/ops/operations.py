"""Operations: every operator action, reached from one object (the API and the demo hold one per request).

The actions live by subject in products.py, people.py and devices.py (one class each over base.py's
OpsBase); firmware, rollouts and webhooks are reached as attributes and are given only what they use.
"""

from __future__ import annotations

from .base import OpsBase, device_id_or_invalid
from .devices import DeviceOperations, ImportReport
from .firmware import FirmwareOperations
from .people import PeopleOperations
from .products import ProductOperations, slugify
from .rollouts import RolloutOperations
from .webhooks import WebhookOperations

__all__ = ["ImportReport", "Operations", "device_id_or_invalid", "slugify"]


class Operations(ProductOperations, PeopleOperations, DeviceOperations):
    @property
    def rollouts(self) -> RolloutOperations:
        """Staged firmware rollouts (ops/rollouts.py)."""
        return RolloutOperations(self)

    @property
    def webhooks(self) -> WebhookOperations:
        """Product webhooks (ops/webhooks.py)."""
        return WebhookOperations(self.ctx)

    @property
    def firmware(self) -> FirmwareOperations:
        """Firmware, device groups, releases and firmware locks (ops/firmware.py)."""
        return FirmwareOperations(self)


_ = OpsBase  # the base every part shares (re-exported for the firmware and rollout actions' type)
