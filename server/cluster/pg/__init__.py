"""The cluster bus over PostgreSQL: LISTEN/NOTIFY for control messages and event doorbells, a session
advisory lock for leadership (docs/CLUSTER.md, "Cluster mode")."""

from .bus import CONTROL, EVENTS, PgBus
from .leader import LeaderLock
from .listener import Listener

__all__ = ["CONTROL", "EVENTS", "LeaderLock", "Listener", "PgBus"]
