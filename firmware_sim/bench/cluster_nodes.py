"""The servers of one configuration of the cluster benchmark: one `fleetgate serve` on SQLite, or
N on one fresh PostgreSQL database sharing one server key and one secrets key (docs/CLUSTER.md,
"Starting three nodes"), with the fleet registered and the load workers spread over the nodes.

CPU is counted over every node process and the PostgreSQL backends serving the database: the
backends are the pids `pg_stat_activity` lists for it, read from /proc (bench/pgdb.py).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from protocol.noise import KeyPair

from ..identity import DeviceIdentity
from .harness import Bench, LoadSettings
from .machine import Pinning, ProcessMeter, cpu_seconds, open_fds, pin, rss_kib
from .pool import WorkerPool, source_addresses
from .server import BenchServer

PROBE_PRODUCT = 4343  # the latency probes' devices: registered, not pre-added (approved one by one)


@dataclass(frozen=True, slots=True)
class Configuration:
    name: str
    nodes: int
    postgres: bool

    @property
    def label(self) -> str:
        return f"{self.nodes} x {'PostgreSQL' if self.postgres else 'SQLite'}"


CONFIGURATIONS = {
    "sqlite": Configuration("sqlite", 1, False),
    "pg": Configuration("pg", 1, True),
    "pg3": Configuration("pg3", 3, True),
}


class ClusterMeter(ProcessMeter):
    """CPU seconds of all node processes, plus `also` (the PostgreSQL backends)."""

    def __init__(self, pids: list[int], also: Callable[[], float] | None) -> None:
        super().__init__(pids[0], also)
        self.pids = pids

    def cpu(self) -> float:
        return sum(self.split())

    def split(self) -> tuple[float, float]:
        """(the nodes' CPU seconds, the backends')."""
        nodes = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):  # a node killed on purpose
                nodes += cpu_seconds(pid)
        return nodes, self.also() if self.also is not None else 0.0


@dataclass(slots=True)
class ClusterBench:
    """One configuration, running: its nodes, the database, the fleet's load, the probe devices."""

    config: Configuration
    bench: Bench  # bench.server is node 1: the fleet is registered through it
    meter: ClusterMeter  # bench.meter
    nodes: list[BenchServer]
    database: str | None
    probes: list[DeviceIdentity]
    public_key: bytes

    def leader(self) -> str | None:
        if self.database is None:
            return None
        with psycopg.connect(self.database, connect_timeout=5) as conn:
            row = conn.execute("SELECT node_id FROM cluster_leader").fetchone()
        return None if row is None else str(row[0])

    def sessions_per_node(self) -> dict[str, int]:
        """The store's view: live sessions per node (PostgreSQL); SQLite's one node: its online devices."""
        if self.database is None:
            return {}
        with psycopg.connect(self.database, connect_timeout=5) as conn:
            rows = conn.execute("SELECT node_id, COUNT(*) FROM live_sessions GROUP BY node_id ORDER BY 1").fetchall()
        return {str(node): int(n) for node, n in rows}

    def node_readings(self) -> list[dict[str, int | str]]:
        out: list[dict[str, int | str]] = []
        for i, node in enumerate(self.nodes):
            if node.proc is None or node.proc.poll() is not None:
                continue
            out.append({"node": f"n{i + 1}", "rss_kib": rss_kib(node.pid), "fds": open_fds(node.pid)})
        return out


def _private_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def open_configuration(
    config: Configuration, devices: int, probes: int, pinning: Pinning, settings: LoadSettings, database_url: str | None
) -> Iterator[ClusterBench]:
    """Start the configuration's nodes on a fresh store, register `devices` fleet devices (pre-added)
    and `probes` probe devices (not), and start the load workers spread over the nodes."""
    with contextlib.ExitStack() as stack:
        database = None
        if config.postgres:
            if database_url is None:
                raise ValueError(f"the {config.label} configuration needs --server-database URL")
            from .pgdb import bench_database

            database = stack.enter_context(bench_database(database_url))
        yield from _open(config, devices, probes, pinning, settings, database)


def _open(
    config: Configuration, devices: int, probes: int, pinning: Pinning, settings: LoadSettings, database: str | None
) -> Iterator[ClusterBench]:
    root = Path(tempfile.mkdtemp(prefix=f"fleetsim-cluster-{config.name}-"))
    pin(pinning.load)  # this process is load too
    key = KeyPair.generate()
    key_file = _private_file(root / "server.key", key.private.hex())
    secrets_file = _private_file(root / "secrets.key", secrets.token_hex(32))
    nodes: list[BenchServer] = []
    pool: WorkerPool | None = None
    backends = None
    try:
        for i in range(config.nodes):
            (root / f"n{i + 1}").mkdir()
            extra = []
            if database is not None:
                extra = ["--node-id", f"n{i + 1}", "--server-key", str(key_file), "--secrets-key-file",
                         str(secrets_file)]  # fmt: skip
            node = BenchServer(
                root / f"n{i + 1}" / "data", log_level=settings.log_level, publish_rate=1e6, cores=pinning.server,
                max_handshakes=settings.max_handshakes, database=database, extra=extra,
            )  # fmt: skip
            if database is not None:
                node.public_key = key.public
                node.token = nodes[0].token if nodes else ""  # the first node makes the admin
            nodes.append(node)
            node.start()  # one after another: the first migrates and makes the admin
        fleet = [DeviceIdentity.generate() for _ in range(devices)]
        probe_ids = [DeviceIdentity.generate() for _ in range(probes)]
        nodes[0].register(fleet)
        nodes[0].register(probe_ids, PROBE_PRODUCT, preadd=False)
        workers = max(settings.workers, -(-devices // 15_000))  # a worker holds at most 15,000 (its fd limit)
        public = nodes[0].public_key
        pool = WorkerPool(fleet, workers, "127.0.0.1", nodes[0].device_port, public, pinning.load,
                          tuple(n.device_port for n in nodes))  # fmt: skip
        also = None
        if database is not None:
            from .pgdb import BackendMeter

            backends = BackendMeter(database)
            also = backends.cpu
        meter = ClusterMeter([n.pid for n in nodes], also)
        bench = Bench(nodes[0], pool, meter, pinning, settings, source_addresses(settings.sources), devices)
        bench.settle()
        yield ClusterBench(config, bench, meter, nodes, database, probe_ids, public)
    finally:
        if pool is not None:
            pool.shutdown()
        if backends is not None:
            backends.close()
        for i, node in enumerate(nodes):
            code = node.stop()
            if code not in (0, None, -9):
                print(f"fleetsim bench: node n{i + 1} exited with code {code} (log: {node.log_path})")
        if not settings.keep_data:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"fleetsim bench: the nodes' data directories and logs kept in {root}")
