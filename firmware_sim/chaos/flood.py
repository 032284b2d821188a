"""`fleetsim chaos flood`: junk sockets from one address while real devices connect from others.

It starts a `fleetgate serve` of its own (a temporary data directory, its log kept beside it), registers
the real devices in a product (so a connected one is privileged: status OK, every privilege), then:
  1. opens `--junk` sockets from 127.0.0.1 that never send a HELLO, in a process of its own (so
     that thousands of junk tasks do not starve the timing of the devices and the API): idle, or
     (`--mode drip`) one byte a second of a HELLO frame that never ends; held until the server
     closes them (with `--reconnect`, opened again);
  2. once they are open (or `--junk-lead` seconds on), connects `--devices` simulated devices from
     127.0.0.2 on (`--device-addresses` of them), each retrying at once when its connection is
     closed before WELCOME, until privileged or `--connect-limit` seconds;
  3. polls the HTTP API (GET /v1/products) throughout;
and prints: devices privileged of M, connect p50/p99, API answered x of y and its worst latency,
junk opened, closed by the server and held as the devices came, and what the server says it shed
(its `admission_shed` lines).
Exit 0 when every device is privileged, p99 is under `--p99-target` and the API answered every poll.

    python -m firmware_sim.chaos.flood --junk 8000 --devices 50            # the issue's target
    python -m firmware_sim.chaos.flood --junk 8000 --mode drip --reconnect
    python -m firmware_sim.chaos.flood --server-src /path/to/older/checkout  # the same drill, older code

The drill raises its descriptor limit to the hard limit; the server it starts inherits it.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import multiprocessing
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO

import httpx
import trio

from protocol.codes import Privilege, Status
from protocol.connection import PREAMBLE
from protocol.messages import parse_public_key

from ..device import DeviceSettings, SimDevice
from ..drill_api import DrillApi
from ..drill_server import free_ports
from ..identity import DeviceIdentity

PRODUCT_ID = 7301
JUNK_ADDRESS = "127.0.0.1"
OPEN_AT_ONCE = 256  # junk connects in flight at a time
JUNK_CONNECT_LIMIT = 10.0  # seconds for one junk connect (a full listen queue drops SYNs)
DRIP = PREAMBLE + b"\x00\x60" + b"\x00" * 4096  # a HELLO frame that announces 96 bytes, one a second
API_POLL_EVERY = 0.25
API_LIMIT = 10.0  # seconds an API poll may take before it counts as unanswered
START_LIMIT = 60.0
STOP_LIMIT = 20.0


# ---------------------------------------------------------------------- figures


@dataclass
class Figures:
    junk_target: int = 0
    junk_opened: int = 0
    junk_failed: int = 0
    junk_closed: int = 0  # closed (or reset) by the server while held
    junk_held_at_start: object = None  # junk sockets open as the devices started connecting
    junk_held_at_end: object = None  # ... and once every device was done
    devices: int = 0
    privileged: int = 0
    connect_s: list[float] = field(default_factory=list)  # the privileged devices' connect times
    attempts: int = 0  # device connection attempts in all (a retry after a close before WELCOME)
    api_polls: int = 0
    api_answered: int = 0
    api_worst_s: float = 0.0
    shed: dict[str, int] | None = None  # from the server's admission_shed lines; None: it logs none

    def percentile(self, p: float) -> float | None:
        if not self.connect_s:
            return None
        ordered = sorted(self.connect_s)
        return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]

    def passed(self, p99_target: float) -> bool:
        p99 = self.percentile(99)
        return (
            self.privileged == self.devices
            and p99 is not None
            and p99 < p99_target
            and self.api_polls > 0
            and self.api_answered == self.api_polls
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "junk": {"target": self.junk_target, "opened": self.junk_opened, "connect_failed": self.junk_failed,
                     "closed_by_server": self.junk_closed, "held_as_devices_started": self.junk_held_at_start,
                     "held_as_devices_finished": self.junk_held_at_end},
            "devices": {"total": self.devices, "privileged": self.privileged, "attempts": self.attempts,
                        "connect_p50_s": _round(self.percentile(50)), "connect_p99_s": _round(self.percentile(99)),
                        "connect_max_s": _round(max(self.connect_s, default=None))},
            "api": {"polls": self.api_polls, "answered": self.api_answered, "worst_s": round(self.api_worst_s, 3)},
            "shed_by_server": self.shed,
        }  # fmt: skip


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def report(figures: Figures, args: argparse.Namespace) -> str:
    f, d = figures, figures.as_dict()["devices"]
    assert isinstance(d, dict)
    last = 1 + args.device_addresses
    shed = ", ".join(f"{k} {v}" for k, v in f.shed.items()) if f.shed is not None else "not reported by this server"
    verdict = "PASS" if f.passed(args.p99_target) else "FAIL"
    return "\n".join([
        f"flood: {args.junk} {args.mode} junk sockets from {JUNK_ADDRESS}"
        f"{' (reopened when closed)' if args.reconnect else ''}; {args.devices} devices from 127.0.0.2-127.0.0.{last}",
        f"  devices privileged: {f.privileged} of {f.devices}; connect p50 {_s(d['connect_p50_s'])}, "
        f"p99 {_s(d['connect_p99_s'])}, max {_s(d['connect_max_s'])} ({f.attempts} attempts)",
        f"  api: answered {f.api_answered} of {f.api_polls} polls, worst {f.api_worst_s:.3f} s",
        f"  junk: opened {f.junk_opened} times for {f.junk_target} sockets (connects failed {f.junk_failed}), "
        f"closed by the server {f.junk_closed}; held open as the devices started {f.junk_held_at_start}, "
        f"as they finished {f.junk_held_at_end}",
        f"  shed by the server: {shed}",
        f"  {verdict} (targets: {f.devices} of {f.devices} privileged, p99 under {args.p99_target:g} s, "
        f"the API answering every poll)",
    ])  # fmt: skip


def _s(value: object) -> str:
    return f"{value:.3f} s" if isinstance(value, float) else "-"


# ---------------------------------------------------------------------- the server


@dataclass
class FloodServer:
    """`fleetgate serve` in a temporary data directory; `src`: run another checkout's code."""

    data_dir: Path
    log_path: Path
    extra_args: list[str]
    src: Path | None = None
    device_port: int = 0
    api_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self.device_port, self.api_port = free_ports(2)
        cwd = self.src or Path(__file__).resolve().parents[2]
        cmd = [
            sys.executable, "-m", "server.cli", "serve", "--data-dir", str(self.data_dir),
            "--device-port", str(self.device_port), "--api-port", str(self.api_port), *self.extra_args,
        ]  # fmt: skip
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=self._log)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_LIMIT
        banner = b""
        while b"Ctrl-C" not in banner and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            banner += line
        if b"Ctrl-C" not in banner:
            self.stop()
            raise RuntimeError(f"the server did not start: {banner.decode(errors='replace')} (log {self.log_path})")

    @property
    def public_key(self) -> bytes:
        return parse_public_key((self.data_dir / "server.pub").read_text().strip())

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_LIMIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def shed_counts(self) -> dict[str, int] | None:
        """The sum of the server's admission_shed lines by reason; None if it logged none."""
        totals: dict[str, int] | None = None
        for line in self.log_path.read_text(errors="replace").splitlines():
            if '"admission_shed"' not in line:
                continue
            entry = json.loads(line)
            totals = totals or {}
            for reason in ("address_share", "first_message_timeout"):
                totals[reason] = totals.get(reason, 0) + int(entry.get(reason, 0))
        return totals


# ---------------------------------------------------------------------- the load


async def open_from(source: str, port: int) -> trio.SocketStream:
    """A TCP connection to 127.0.0.1:port from `source` (any 127.0.0.x is this host on Linux)."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    try:
        await sock.bind((source, 0))
        await sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


@dataclass
class JunkLoad:
    port: int
    mode: str
    reconnect: bool
    figures: Figures
    at_once: trio.Semaphore = field(default_factory=lambda: trio.Semaphore(OPEN_AT_ONCE))
    all_tried: trio.Event = field(default_factory=trio.Event)  # every junk socket opened once (or failed to)

    def tried(self, opened: bool) -> None:
        f = self.figures
        f.junk_opened += opened
        f.junk_failed += not opened
        if f.junk_opened + f.junk_failed >= f.junk_target:
            self.all_tried.set()


async def hold_junk(load: JunkLoad) -> None:
    """One junk socket: open it, say nothing (or drip), count the server closing it."""
    figures, mode = load.figures, load.mode
    while True:
        async with load.at_once:
            try:
                with trio.fail_after(JUNK_CONNECT_LIMIT):
                    stream = await open_from(JUNK_ADDRESS, load.port)
            except OSError as exc:
                # Reset as it connected: the server shed it at once (before connect() returned).
                reset = exc.errno == errno.ECONNRESET
                load.tried(reset)
                figures.junk_closed += reset
                if reset and load.reconnect:
                    continue
                return
            except trio.TooSlowError:
                load.tried(False)
                return
        load.tried(True)
        async with stream:
            try:
                if mode == "drip":
                    for byte in DRIP:
                        await stream.send_all(bytes([byte]))
                        with trio.move_on_after(1.0):
                            if not await stream.receive_some(1):
                                break
                else:
                    await stream.receive_some(1)  # returns (or raises) when the server closes it
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        figures.junk_closed += 1
        if not load.reconnect:
            return


async def connect_one(
    identity: DeviceIdentity, source: str, port: int, key: bytes, limit: float, figures: Figures
) -> None:
    """Connect until privileged (retrying at once if closed before WELCOME) or `limit` s have passed."""
    started = trio.current_time()
    settings = DeviceSettings(product_id=PRODUCT_ID)
    with trio.move_on_after(limit):
        while True:
            figures.attempts += 1
            try:
                stream = await open_from(source, port)
            except OSError:
                await trio.sleep(0.05)
                continue
            async with stream:
                device = SimDevice(identity, key, settings)
                try:
                    await device.handshake(stream)
                except Exception:
                    await trio.sleep(0.05)
                    continue
                if device.state.status is Status.OK and device.state.privileges == Privilege.all():
                    figures.privileged += 1
                    figures.connect_s.append(trio.current_time() - started)
                return


async def poll_api(api: httpx.AsyncClient, figures: Figures) -> None:
    while True:
        started = trio.current_time()
        try:
            with trio.fail_after(API_LIMIT):
                response = await api.get("/v1/products")
            figures.api_answered += response.status_code == 200
        except (httpx.HTTPError, trio.TooSlowError):
            pass
        figures.api_polls += 1  # counted once it ended: the drill's own stop cancels the last
        figures.api_worst_s = max(figures.api_worst_s, trio.current_time() - started)
        await trio.sleep(API_POLL_EVERY)


# ---------------------------------------------------------------------- the junk, in a process of its own
# Thousands of junk tasks would starve the drill's own loop, and with it the devices' handshakes and
# the API polls it times: the junk runs in another process, which reports its counts over a pipe.


def junk_process(port: int, mode: str, reconnect: bool, n: int, pipe: Connection) -> None:
    """The junk process's entry point: ("tried", opened, failed) once every socket was opened once;
    asked "held", ("held", sockets open now); told "stop", ("done", opened, failed, closed)."""
    trio.run(_junk_main, port, mode, reconnect, n, pipe)


async def _junk_main(port: int, mode: str, reconnect: bool, n: int, pipe: Connection) -> None:
    figures = Figures(junk_target=n)
    junk = JunkLoad(port, mode, reconnect, figures)

    async def report_tried() -> None:
        await junk.all_tried.wait()
        pipe.send(("tried", figures.junk_opened, figures.junk_failed))

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(hold_junk, junk)
        if n:
            nursery.start_soon(report_tried)
        else:
            pipe.send(("tried", 0, 0))
        while (asked := await trio.to_thread.run_sync(pipe.recv)) != "stop":
            if asked == "held":
                pipe.send(("held", figures.junk_opened - figures.junk_closed))
        nursery.cancel_scope.cancel()
    pipe.send(("done", figures.junk_opened, figures.junk_failed, figures.junk_closed))


async def ask(pipe: Connection, what: str) -> tuple[object, ...]:
    """Send `what` to the junk process and return its answer of that kind (skipping others)."""
    pipe.send(what)
    while True:
        answer: tuple[object, ...] = await trio.to_thread.run_sync(pipe.recv)
        if answer[0] == what:
            return answer


async def run_flood(server: FloodServer, args: argparse.Namespace) -> Figures:
    figures = Figures(junk_target=args.junk, devices=args.devices)
    identities = [DeviceIdentity.generate() for _ in range(args.devices)]
    api = DrillApi(f"http://127.0.0.1:{server.api_port}", server.token)
    ours, theirs = multiprocessing.Pipe()
    junk = multiprocessing.get_context("spawn").Process(
        target=junk_process, args=(server.device_port, args.mode, args.reconnect, args.junk, theirs), daemon=True
    )
    try:
        await api.create_product(PRODUCT_ID, "Flood drill")
        await api.register_keys(identities)
        await api.preadd(PRODUCT_ID, identities)
        key = server.public_key
        async with trio.open_nursery() as load:
            load.start_soon(poll_api, api.client, figures)
            junk.start()
            # The junk first (up to junk_lead seconds), then the devices while it is held.
            await trio.to_thread.run_sync(ours.poll, args.junk_lead + 2)  # (+ the process starting)
            figures.junk_held_at_start = (await ask(ours, "held"))[1]
            async with trio.open_nursery() as devices:
                for i, identity in enumerate(identities):
                    source = f"127.0.0.{2 + i % args.device_addresses}"
                    devices.start_soon(
                        connect_one, identity, source, server.device_port, key, args.connect_limit, figures
                    )
            figures.junk_held_at_end = (await ask(ours, "held"))[1]
            await trio.sleep(args.hold_after)  # the API still polled, the junk still held
            load.cancel_scope.cancel()
        ours.send("stop")
        while await trio.to_thread.run_sync(ours.poll, STOP_LIMIT):
            answer = ours.recv()
            if answer[0] == "done":
                _, figures.junk_opened, figures.junk_failed, figures.junk_closed = answer
                break
    finally:
        await api.aclose()
        if junk.is_alive():
            junk.join(STOP_LIMIT)
            if junk.is_alive():
                junk.kill()
    return figures


def raise_descriptor_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetsim chaos flood", description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--junk", type=int, default=8000, help="junk sockets from 127.0.0.1 (default 8000)")
    p.add_argument("--mode", choices=["idle", "drip"], default="idle", help="idle, or one byte a second")
    p.add_argument("--reconnect", action="store_true", help="open a junk socket again when the server closes it")
    p.add_argument("--devices", type=int, default=50, help="real devices (default 50)")
    p.add_argument("--device-addresses", type=int, default=10, help="source addresses they use (127.0.0.2 on)")
    p.add_argument("--junk-lead", type=float, default=30.0, help="seconds at most to open the junk first")
    p.add_argument("--connect-limit", type=float, default=60.0, help="seconds a device keeps trying")
    p.add_argument("--hold-after", type=float, default=2.0, help="seconds the flood goes on after the devices")
    p.add_argument("--p99-target", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument("--server-src", type=Path, help="a checkout whose server to run (default: this one)")
    p.add_argument("--server-arg", action="append", default=[], help="passed to fleetgate serve (repeatable)")
    p.add_argument("--keep", type=Path, help="use this directory for the data directory and server.log")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.device_addresses <= 250 or args.junk < 0 or args.devices < 1:
        print("flood: --devices at least 1, --junk at least 0, --device-addresses 1..250", file=sys.stderr)
        return 2
    limit = raise_descriptor_limit()
    if limit < args.junk + args.devices + 256:
        print(f"flood: the descriptor limit is {limit}: too low for {args.junk} junk sockets", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fleetgate-flood-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        server = FloodServer(where / "data", where / "server.log", ["--log-level", "info", *args.server_arg],
                             src=args.server_src)  # fmt: skip
        try:
            server.start()
        except RuntimeError as exc:
            print(f"flood: {exc}", file=sys.stderr)
            return 1
        try:
            figures = trio.run(run_flood, server, args)
        finally:
            server.stop()  # SIGINT: the server writes the last admission_shed line as it stops
        figures.shed = server.shed_counts()
        tracebacks = server.log_path.read_text(errors="replace").count("Traceback")
        if tracebacks:
            print(f"flood: the server log ({server.log_path}) has {tracebacks} tracebacks", file=sys.stderr)
    print(report(figures, args))
    if args.json:
        print(json.dumps(figures.as_dict()))
    return 0 if figures.passed(args.p99_target) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
