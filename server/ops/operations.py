"""Operations: every operator action, reached from one object (the API and the demo hold one per request).

The actions live by subject in products.py, people.py and devices.py (one class each over base.py's
OpsBase); firmware, rollouts and webhooks are reached as attributes and are given only what they use.
"""

from __future__ import annotations

from .devices import DeviceOperations
from .firmware import FirmwareOperations
from .people import PeopleOperations
from .products import ProductOperations
from .rollouts import RolloutOperations
from .webhooks import WebhookOperations


class Operations(ProductOperations, PeopleOperations, DeviceOperations):
    @property
    def rollouts(self) -> RolloutOperations:
        """Staged firmware rollouts (ops/rollouts.py): given this object as their OpsBase."""
        return RolloutOperations(self)

    @property
    def webhooks(self) -> WebhookOperations:
        """Product webhooks (ops/webhooks.py)."""
        return WebhookOperations(self.ctx)

    @property
    def firmware(self) -> FirmwareOperations:
        """Firmware, device groups, releases and firmware locks (ops/firmware.py)."""
        return FirmwareOperations(self)
