"""One benchmark run's setting: a fresh server on its core, the fleet registered, the load
workers on the other cores, and the readings every figure is taken from."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..identity import DeviceIdentity
from .machine import Pinning, ProcessMeter, counter_delta, cpu_times, kernel_counters, pin
from .pool import WorkerPool, source_addresses
from .profile import Profiler
from .server import PRODUCT_ID, BenchServer
from .stats import busy_share, rounded, saturated_share


@dataclass(frozen=True, slots=True)
class LoadSettings:
    workers: int = 4
    sources: int = 4  # loopback source addresses
    timeout: float = 60.0  # per-device limit for TCP connect + handshake
    log_level: str = "info"  # the server's (the default of `fleetgate serve`)
    max_handshakes: int | None = None  # the server's `--max-handshakes` (None: its default)
    keep_data: bool = False
    profile: Path | None = None  # py-spy record of the server while the scenario runs
    database: str | None = None  # the server on PostgreSQL: a fresh database beside this URL's


@dataclass(slots=True)
class Bench:
    server: BenchServer
    pool: WorkerPool
    meter: ProcessMeter
    pinning: Pinning
    settings: LoadSettings
    sources: list[str]
    devices: int
    online: int = 0  # fleet devices [0, online) are connected
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def settle(self) -> float:
        """Wait until the server is quiet; its CPU seconds then."""
        return self.meter.settle()

    def grow(self, n: int, rate: float | None = None, concurrency: int | None = 512) -> list[tuple[float, float, str]]:
        """Bring fleet devices [online, n) online (not a measured phase)."""
        if n <= self.online:
            return []
        self.pool.prepare(self.online, n, PRODUCT_ID)
        results = self.pool.connect(
            self.online, n, time.monotonic() + 0.1, rate, concurrency, self.settings.timeout, self.sources
        )
        failed = [r for r in results if r[2]]
        if failed:
            self.note(f"{len(failed)} of {len(results)} devices failed to come online: {failed[0][2]}")
        self.online = n
        return results

    def disconnect_all(self) -> None:
        self.pool.close_all()
        self.online = 0
        self.settle()

    def server_info(self) -> dict[str, object]:
        return {
            "command": " ".join(self.server.command),
            "log_level": self.settings.log_level,
            "max_handshakes": self.settings.max_handshakes,
            "publish_rate_limit": self.server.publish_rate,
            "pid": self.server.pid,
        }


SAMPLE_EVERY = 0.2  # seconds between the utilization sampler's readings


class UtilizationSampler:
    """Reads the server's and the load's CPU seconds every SAMPLE_EVERY seconds in a thread of
    the bench process (a few /proc reads each: it runs on the load's core)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.server: list[tuple[float, float]] = []
        self.load: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="utilization", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._read()  # the phase's end is a reading too

    def _read(self) -> None:
        t = time.monotonic()
        self.server.append((t, self.bench.meter.cpu()))
        self.load.append((t, self.bench.pool.cpu()))

    def _run(self) -> None:
        self._read()
        while not self._stop.wait(SAMPLE_EVERY):
            self._read()


@dataclass(slots=True)
class Phase:
    """Readings at the start and end of a measured phase."""

    bench: Bench
    label: str = "phase"
    wall0: float = 0.0
    cpu0: float = 0.0
    load0: float = 0.0
    kernel0: dict[str, int] = field(default_factory=dict)
    wall1: float = 0.0
    cpu1: float = 0.0
    load1: float = 0.0
    kernel1: dict[str, int] = field(default_factory=dict)
    profiler: Profiler | None = None
    sys0: float = 0.0
    sys1: float = 0.0
    sampler: UtilizationSampler | None = None

    def start(self) -> Phase:
        """Readings now; with --profile, py-spy starts sampling the server first."""
        profile = self.bench.settings.profile
        if profile is not None:
            name = profile.with_name(f"{profile.stem}-{self.label}{profile.suffix or '.txt'}")
            self.profiler = Profiler(self.bench.server.pid, name, self.bench.pinning)
            time.sleep(1.0)  # py-spy attaches
        self.kernel0 = kernel_counters()
        self.load0 = self.bench.pool.cpu()
        self.sys0 = cpu_times(self.bench.server.pid)[1]
        self.cpu0 = self.bench.meter.cpu()
        self.wall0 = time.monotonic()
        self.sampler = UtilizationSampler(self.bench)
        self.sampler.start()
        return self

    def stop(self) -> Phase:
        if self.sampler is not None:
            self.sampler.stop()
        self.wall1 = time.monotonic()
        self.cpu1 = self.bench.meter.cpu()
        self.sys1 = cpu_times(self.bench.server.pid)[1]
        self.load1 = self.bench.pool.cpu()
        self.kernel1 = kernel_counters()
        return self

    def system_share(self) -> float | None:
        """Of the server's CPU in the phase, the share spent in the kernel (stime)."""
        return round((self.sys1 - self.sys0) / self.server_cpu, 3) if self.server_cpu > 0 else None

    def done(self) -> None:
        """After the phase's tail (the server settled): stop the profiler, if any."""
        if self.profiler is not None:
            self.bench.note(self.profiler.stop())
            self.profiler = None

    @property
    def wall(self) -> float:
        return self.wall1 - self.wall0

    @property
    def server_cpu(self) -> float:
        return self.cpu1 - self.cpu0

    @property
    def load_cpu(self) -> float:
        return self.load1 - self.load0

    def kernel(self) -> dict[str, int]:
        return counter_delta(self.kernel0, self.kernel1)

    def busy(self, load_cores: int) -> dict[str, float | None]:
        """Average busy shares over the phase, and the share of its time each side was saturated."""
        s = busy_share(self.server_cpu, self.wall)
        lo = busy_share(self.load_cpu, self.wall, load_cores)
        sampler = self.sampler
        s_sat = saturated_share(sampler.server) if sampler else None
        lo_sat = saturated_share(sampler.load, load_cores) if sampler else None
        return {
            "server_busy": rounded(s, 3),
            "load_busy": rounded(lo, 3),
            "server_saturated": rounded(s_sat, 3),
            "load_saturated": rounded(lo_sat, 3),
        }


def bottleneck_note(busy: Mapping[str, float | None], what: str) -> str | None:
    """Say which side limited a rate: a figure is the server's only if the server was busy. A
    side counts as busy if it was saturated for most of the phase (`*_saturated`), even where
    a ramp or a stall pulls its average down."""
    server, load = busy.get("server_busy"), busy.get("load_busy")
    if server is None or load is None:
        return None
    server_sat, load_sat = busy.get("server_saturated") or 0.0, busy.get("load_saturated") or 0.0
    if server >= 0.85 or server_sat >= 0.75:
        return None
    if load >= 0.85 or load_sat >= 0.75:
        return (f"{what}: the load, not the server, was the limit (load cores {load:.0%} busy, saturated "
                f"{load_sat:.0%} of the time; server {server:.0%}): the rate is a lower bound of "
                "the server's")  # fmt: skip
    if server_sat + load_sat >= 0.75:
        return (f"{what}: CPU-bound by turns: the server was saturated {server_sat:.0%} of the time, the load "
                f"{load_sat:.0%} (a storm's load opens the connections first and reads the last WELCOMEs): "
                "the rate is the server's, less the load's share")  # fmt: skip
    return (f"{what}: neither side was saturated (server {server:.0%} busy, saturated {server_sat:.0%} of the time; "
            f"load {load:.0%}, saturated {load_sat:.0%}): the rate is bound by latency (round trips, windows, "
            "timers) rather than CPU")  # fmt: skip


def kernel_note(kernel: dict[str, int], what: str) -> str | None:
    drops = {k: v for k, v in kernel.items() if k in ("listen_overflows", "listen_drops", "syn_queue_full_drops")}
    if not drops:
        return None
    return (f"{what}: the kernel dropped connection attempts ({drops}): a kernel queue (somaxconn / "
            "tcp_max_syn_backlog / the listen backlog) turned them away before the server saw them; they "
            "came back after SYN retransmits (1 s, 3 s, ...)")  # fmt: skip


@contextmanager
def open_bench(
    devices: int, pinning: Pinning, settings: LoadSettings, publish_rate: float | None = None
) -> Iterator[Bench]:
    """A fresh server with `devices` registered and pre-added, and the load workers."""
    with contextlib.ExitStack() as stack:
        database = None
        if settings.database is not None:
            from .pgdb import bench_database

            database = stack.enter_context(bench_database(settings.database))
        yield from _open_bench(devices, pinning, settings, publish_rate, database)


def _open_bench(
    devices: int, pinning: Pinning, settings: LoadSettings, publish_rate: float | None, database: str | None
) -> Iterator[Bench]:
    root = Path(tempfile.mkdtemp(prefix="fleetsim-bench-"))
    pin(pinning.load)  # this process is load too
    server = BenchServer(
        root / "data", log_level=settings.log_level, publish_rate=publish_rate, cores=pinning.server,
        max_handshakes=settings.max_handshakes, database=database,
    )  # fmt: skip
    pool: WorkerPool | None = None
    backends = None
    try:
        identities = [DeviceIdentity.generate() for _ in range(devices)]
        server.start()
        server.register(identities)
        pool = WorkerPool(identities, settings.workers, "127.0.0.1", server.device_port, server.public_key,
                          pinning.load)  # fmt: skip
        if database is not None:  # PostgreSQL's backends work for the server: their CPU is its cost
            from .pgdb import BackendMeter

            backends = BackendMeter(database)
        bench = Bench(server, pool, ProcessMeter(server.pid, backends.cpu if backends else None), pinning, settings,
                      source_addresses(settings.sources), devices)  # fmt: skip
        bench.settle()
        yield bench
    finally:
        if pool is not None:
            pool.shutdown()
        if backends is not None:
            backends.close()
        code = server.stop()
        if code not in (0, None):
            print(f"fleetsim bench: the server exited with code {code} (log: {server.log_path})")
        if not settings.keep_data:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"fleetsim bench: server data and log kept in {root}")
