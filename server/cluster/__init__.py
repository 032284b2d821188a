"""The seam between this node and the others: control messages sent inside a write transaction and
delivered to every node iff it commits, and the leadership the singleton services run under.

`LocalBus` (local.py) is the one process Fleetgate runs as today; a bus over PostgreSQL's
LISTEN/NOTIFY and advisory locks replaces that one class (docs/ARCHITECTURE.md, "Seams for more
than one process", lists this and every other place that assumes one process).
"""

from .bus import ClusterBus, Handler
from .local import LocalBus
from .messages import (
    AbortFirmware,
    ControlMessage,
    OfferFirmware,
    ReevaluateDevice,
    ReevaluateProduct,
    WakeRollouts,
    WebhooksChanged,
)

__all__ = [
    "AbortFirmware",
    "ClusterBus",
    "ControlMessage",
    "Handler",
    "LocalBus",
    "OfferFirmware",
    "ReevaluateDevice",
    "ReevaluateProduct",
    "WakeRollouts",
    "WebhooksChanged",
]
