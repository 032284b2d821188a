"""ServerContext: the long-lived parts of one running server, built by app.py and shared by the device link,
the operator actions and the API.

It is here, not in the device link, so that the API and the operator actions reach the store and the live
sessions without importing the session code; the services it holds take the few parts they use, not it.
Everything in it assumes one process (docs/ARCHITECTURE.md, "What assumes one process"); the cluster bus
and the event log are the seams where several processes plug in.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field

from protocol.codes import CloseReason
from protocol.noise import KeyPair

from .cluster import ClusterBus, ControlMessage, Handler, LocalBus
from .config import ServerConfig
from .events.broker import EventBroker
from .events.log import EventLog
from .events.publishing import DirectFeed, EventFeed, TailFeed
from .firmware.node_cache import BinaryCache
from .health import NodeHealth
from .link.admission_reads import AdmissionReads
from .link.control import NodeControl
from .link.registry import SessionRegistry
from .rollouts.wakeup import Wakeup
from .store import AsyncStore, Transaction
from .supervisor import Supervisor
from .webhooks.service import WebhookService


@dataclass(slots=True)
class ServerContext:
    config: ServerConfig
    server_key: KeyPair
    store: AsyncStore
    registry: SessionRegistry
    rollout_wakeup: Wakeup = field(default_factory=Wakeup)  # rung when a rollout may have work to do
    events: EventBroker = field(default_factory=EventBroker)  # live event streams
    webhooks: WebhookService = field(default_factory=WebhookService)  # product webhooks and their delivery
    health: NodeHealth = field(default_factory=NodeHealth)  # what /readyz reports of this node
    supervisor: Supervisor = field(default_factory=Supervisor)  # restarts the singletons when they fail
    node_id: str | None = None  # cluster mode: this node's id (None: this process is the whole cluster)
    cluster_bus: InitVar[ClusterBus | None] = None  # None: LocalBus, this process is the whole cluster
    event_feed: InitVar[EventFeed | None] = None  # None: DirectFeed, published as this process commits
    cluster_dsn: InitVar[str | None] = None  # cluster mode: the database the nodes share (PgBus, TailFeed)
    bus: ClusterBus = field(init=False)  # control messages to every node (cluster/)
    feed: EventFeed = field(init=False)  # how stored events reach `events` (events/publishing.py)
    event_log: EventLog = field(init=False)  # every event enters here: stored, then published
    binaries: BinaryCache = field(init=False)  # firmware binaries: this node's copies, filled from the store
    admission_reads: AdmissionReads = field(init=False)  # the HELLOs of one wakeup, read in one statement

    def __post_init__(
        self, cluster_bus: ClusterBus | None, event_feed: EventFeed | None, cluster_dsn: str | None
    ) -> None:
        self.bus = (
            cluster_bus if cluster_bus is not None else LocalBus(_each(NodeControl(self).handle, self.webhooks.handle))
        )
        self.feed = event_feed if event_feed is not None else DirectFeed(self.events)
        if cluster_dsn is not None:
            self._join_cluster(cluster_dsn)
        self.event_log = EventLog(self.store, self.feed)
        self.binaries = BinaryCache(self.config.data_dir, self._stored_binary)
        self.admission_reads = AdmissionReads(self.store)

    async def _stored_binary(self, sha256: str) -> bytes | None:
        return await self.store.read(self.store.sync.firmware_blob, sha256)

    def _join_cluster(self, dsn: str) -> None:
        """Every node's events from the table in id order; control messages and leadership through PostgreSQL."""
        from .cluster.pg import PgBus  # psycopg is loaded only by nodes of a cluster

        assert self.node_id is not None, "a cluster node has an id"
        feed = TailFeed(self.store, self.events)
        control = NodeControl(self)
        self.feed = feed
        handle = _each(control.handle, self.webhooks.handle)
        self.bus = PgBus(dsn, self.node_id, handle, on_events=feed.ring, resync=control.resync,
                         unreachable=self._cut_off, release_node=self._release_node,
                         give_up_after=self.config.database_lost_after)  # fmt: skip

    async def _release_node(self, node_id: str) -> None:
        """The leader found `node_id` dead: its devices are offline unless another node holds them."""
        await self.store.write(Transaction(lambda tx: tx.release_node_sessions(node_id), "sweep_node"))

    def _cut_off(self) -> None:
        # A node that cannot reach the database cannot confirm anything: its devices go elsewhere.
        self.registry.close_all(CloseReason.SERVER_SHUTDOWN, "this node has lost its database")


def _each(*handlers: Handler) -> Handler:
    """One bus handler made of several: the live sessions' (link/control.py) and the webhook dispatch's."""

    async def handle(message: ControlMessage) -> None:
        for handler in handlers:
            await handler(message)

    return handle
