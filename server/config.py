"""Server settings with the reason for each default."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from protocol import limits

DEFAULT_DEVICE_PORT = 5683  # Particle's device port (CoAP's registered port)
DEFAULT_API_PORT = 8080
DEFAULT_MAX_HANDSHAKES = 2048
_NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
DEFAULT_MAX_HANDSHAKES_PER_ADDRESS = 256
DEFAULT_FIRST_MESSAGE_TIMEOUT = 2.0
DEFAULT_DATABASE_LOST_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    device_port: int = DEFAULT_DEVICE_PORT
    api_port: int = DEFAULT_API_PORT  # operator HTTP API on the same host
    # A device must finish the handshake and send READY within this many seconds.
    handshake_timeout: float = 10.0
    # ... and deliver its whole HELLO within this many seconds of getting a handshake slot, else it
    # is junk holding the slot, closed without an answer. Devices send it with the connect: it
    # arrives within a round trip, or after TCP's first retransmission (1 s) if it was lost. At 1 s
    # a 10,000-device storm lost 648 devices whose busy client sent late; at 2 s, none.
    first_message_timeout: float = DEFAULT_FIRST_MESSAGE_TIMEOUT
    # Devices ping every heartbeat_interval; after idle_timeout of silence the server closes.
    # 2.5 intervals tolerate one lost ping plus network jitter.
    heartbeat_interval: int = 30
    idle_timeout: int = 75
    # Largest frame we accept from a device after authentication.
    rx_max_frame: int = limits.SERVER_RX_MAX_FRAME
    # Outgoing messages queued per session before the device counts as a slow consumer.
    send_queue: int = 256
    # A single socket write that takes longer than this means the device is not reading.
    write_timeout: float = 20.0
    # Time given to sessions to say goodbye when the server stops.
    shutdown_grace: float = 5.0
    # Listen backlog: deep, so a reconnect storm of a whole fleet is not dropped by the kernel.
    backlog: int = 65535  # the kernel caps it at net.core.somaxconn
    # Handshakes in progress at most; further connections wait in the listen queue, where no
    # handshake clock runs (server/link/acceptor.py). Low enough that the last of them finishes well
    # within handshake_timeout (2048 x ~2 ms of CPU), high enough to keep the core busy. (On the
    # benchmark machine fewer at once measure more CPU each, an effect of its shared cores:
    # docs/BENCHMARKS.md, "accept".)
    max_handshakes: int = DEFAULT_MAX_HANDSHAKES
    # Of those, at most this many from one source address (an IPv6 /64 counts as one): one host
    # cannot take every slot. An eighth of the slots: a carrier-grade NAT puts thousands of devices
    # behind one address, but a handshake holds its place for about a round trip, so 256 at once
    # admits hundreds of devices a second from one address (the rest are closed and retry).
    # Equal to max_handshakes: no per-address share (docs/RELIABILITY.md).
    max_handshakes_per_address: int = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS
    # Bytes requested per socket read.
    receive_size: int = 65536
    # Publishes per device: Particle's limit of about one a second with a burst of four. A publish
    # over it is answered SLOW_DOWN (not stored) rather than closing the link.
    publish_rate: float = 1.0
    publish_burst: int = 4
    # Largest firmware binary an upload may carry (the device link allows up to 16 MiB).
    max_firmware_size: int = limits.MAX_OTA_IMAGE_SIZE
    # Webhooks: Particle's 20 s per request; a failed request is tried again after each delay in
    # turn (Particle's 30 s and 60 s first), the last delay repeating, until `webhook_retry_for`
    # seconds after the delivery was made: then it is marked failed. Finished deliveries are kept
    # for their history, then pruned (docs/RELIABILITY.md, "Webhook delivery").
    # Private and loopback targets are refused unless the operator allows them (a webhook
    # URL must not become a way into the server's own network).
    webhook_timeout: float = 20.0
    webhook_retry_delays: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0)
    webhook_retry_for: float = 24 * 3600.0
    webhook_keep_succeeded: float = 24 * 3600.0
    webhook_keep_failed: float = 7 * 24 * 3600.0
    webhook_allow_private: bool = False
    # The key that seals webhook secrets and passwords in the database, kept out of it: given by
    # the deployment (FLEETGATE_SECRETS_KEY) or a file of theirs; else DATA_DIR/secrets.key.
    secrets_key: bytes | None = field(default=None, repr=False)
    secrets_key_file: Path | None = None
    # The store: None for SQLite in the data directory (nothing to set up); a postgresql:// URL for
    # a PostgreSQL database, which several nodes can share (`--database`, FLEETGATE_DATABASE_URL).
    database_url: str | None = field(default=None, repr=False)  # it may hold a password
    # Cluster mode (a PostgreSQL database): this node's id (`--node-id`; default: an id made once
    # and kept in DATA_DIR/node.id), and the server key every node presents (`--server-key`: devices
    # pin one key, so all nodes load the same file; without it, DATA_DIR/server.key as on one node).
    node_id: str | None = None
    server_key_file: Path | None = None
    # Cluster mode: a node that cannot reach the database refuses new devices at once, and after
    # this many seconds closes the sessions it holds so they move to nodes that can (a blip of a
    # second or two keeps them). Long enough for a PostgreSQL restart to cost nothing more.
    database_lost_after: float = DEFAULT_DATABASE_LOST_AFTER

    def __post_init__(self) -> None:
        # The ranges WELCOME can carry: a config outside them would fail every handshake.
        if not 1 <= self.heartbeat_interval <= 3600:
            raise ValueError("heartbeat_interval must be 1..3600 seconds")
        if not 1 <= self.idle_timeout <= 3 * 3600:
            raise ValueError("idle_timeout must be 1..10800 seconds")
        if self.idle_timeout <= self.heartbeat_interval:
            raise ValueError("idle_timeout must exceed heartbeat_interval, or every quiet device is dropped")
        if not (self.publish_rate > 0 and self.publish_burst >= 1):
            raise ValueError("publish_rate must be above 0 and publish_burst at least 1")
        if not 1024 <= self.max_firmware_size <= limits.MAX_OTA_IMAGE_SIZE:
            raise ValueError(f"max_firmware_size must be 1024..{limits.MAX_OTA_IMAGE_SIZE} bytes")
        if not (self.webhook_timeout > 0 and all(d >= 0 for d in self.webhook_retry_delays)):
            raise ValueError("webhook_timeout must be above 0 and retry delays at least 0")
        if not (self.webhook_retry_for >= 0 and self.webhook_keep_succeeded >= 0 and self.webhook_keep_failed >= 0):
            raise ValueError("webhook_retry_for and the webhook retention times must be at least 0")
        if not limits.MIN_RX_FRAME <= self.rx_max_frame <= limits.NOISE_MAX_MESSAGE:
            raise ValueError(f"rx_max_frame must be {limits.MIN_RX_FRAME}..{limits.NOISE_MAX_MESSAGE}")
        if self.max_handshakes < 1:
            raise ValueError("max_handshakes must be at least 1")
        if self.database_url is not None and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"--database takes a postgresql:// URL, not {self.database_url.split(':', 1)[0]!r}")
        if self.node_id is not None and not _NODE_ID.fullmatch(self.node_id):
            raise ValueError("--node-id takes 1 to 64 letters, digits, '.', '_' or '-'")
        if self.secrets_key is not None and (len(self.secrets_key) != 32 or self.secrets_key_file is not None):
            raise ValueError("secrets_key is 32 bytes, and given instead of secrets_key_file, not with it")
        if self.max_handshakes_per_address < 1:
            raise ValueError("max_handshakes_per_address must be at least 1")
        if not self.database_lost_after > 0:
            raise ValueError("--database-lost-after must be above 0 seconds")
        if not self.first_message_timeout > 0:  # above handshake_timeout it changes nothing
            raise ValueError("first_message_timeout must be above 0 seconds")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "fleetgate.db"

    @property
    def key_path(self) -> Path:
        return self.data_dir / "server.key"

    @property
    def pub_path(self) -> Path:
        return self.data_dir / "server.pub"

    @property
    def secrets_key_path(self) -> Path:
        """The data directory's own secrets key (used when the deployment gives none)."""
        return self.data_dir / "secrets.key"

    @property
    def node_id_path(self) -> Path:
        """A cluster node's id when `--node-id` does not give one: made once, kept here."""
        return self.data_dir / "node.id"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin.token"
