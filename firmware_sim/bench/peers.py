"""The peers: the same connect + acked-publish workload against Fleetgate, mosquitto and amqtt.

    N clients connect at once (Fleetgate: Noise IK + admission; mosquitto: TLS with client
    certificates, require_certificate true; amqtt: TLS with client certificates, which its
    broker verifies when presented), then each sends M messages of the same size, acked
    (Fleetgate PUBLISH_ACK after the store commit; MQTT QoS 1 PUBACK), at most `window`
    unacknowledged per client, with one subscriber to all of them (Fleetgate's product event
    stream over SSE; an MQTT subscription to bench/# at QoS 0).

Nothing is installed here: a missing peer is skipped with the command that installs it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..drill_server import free_ports
from .certs import make_pki
from .harness import LoadSettings, open_bench
from .machine import Pinning, ProcessMeter, counter_delta, kernel_counters, rss_kib
from .mqtt_worker import MqttSpec, mqtt_worker_main
from .peer_figures import bound_by_load, busy_until, ratios
from .pool import ProcessPool, source_addresses
from .scenarios import connect_once, publish_step
from .server import PRODUCT_ID
from .stats import count_by, latency_summary, per_op_us, rate, rounded
from .subscriber import Subscriber

Row = dict[str, Any]
INSTALL = {
    "mosquitto-persist": "apt-get install mosquitto",
    "mosquitto": "apt-get install mosquitto   (Debian's package; the benchmark runs /usr/sbin/mosquitto itself)",
    "amqtt": "pip install amqtt   (or pip install -e '.[bench]')",
}


def run_peers(args: argparse.Namespace, pinning: Pinning, settings: LoadSettings) -> dict[str, Any]:
    rows: list[Row] = []
    notes: list[str] = []
    for name in [p.strip() for p in args.peers.split(",") if p.strip()]:
        print(f"peers: {name} ...", flush=True)
        if name == "fleetgate":
            rows.append(_fleetgate(args, pinning, settings, notes))
        elif name in ("mosquitto", "mosquitto-persist", "amqtt"):
            command = _broker_binary(name)
            if command is None:
                notes.append(f"{name} skipped: not installed. To measure it: {INSTALL[name]}")
                continue
            rows.append(_mqtt(name, command, args, pinning, settings, notes))
        else:
            raise ValueError(f"unknown peer {name!r} (fleetgate, mosquitto, mosquitto-persist, amqtt)")
        print("  " + ", ".join(f"{k}={rows[-1].get(k)}" for k in ("connects_per_s", "cpu_per_conn_us",
              "messages_per_s", "cpu_per_message_us")), flush=True)  # fmt: skip
        bound = [key for key in ("connects_per_s", "messages_per_s") if bound_by_load(rows[-1], key)]
        rows[-1]["load_bound"] = ", ".join(k.split("_")[0] for k in bound) or "no"
        notes.extend(f"{name}: {key} was load-bound (the load generator saturated, the server was not): "
                     "a lower bound of the server's rate" for key in bound)  # fmt: skip
    return {"rows": rows, "ratios": ratios(rows), "notes": notes}


def _broker_binary(name: str) -> list[str] | None:
    if name.startswith("mosquitto"):
        path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        return [path] if path else None
    if importlib.util.find_spec("amqtt") is None:
        return None
    exe = Path(sys.executable).with_name("amqtt")
    return [str(exe)] if exe.exists() else None


# ---------------------------------------------------------------------- Fleetgate


def _fleetgate(args: argparse.Namespace, pinning: Pinning, settings: LoadSettings, notes: list[str]) -> Row:
    n = args.clients
    with open_bench(n, pinning, settings, publish_rate=1e6) as bench:
        base = rss_kib(bench.server.pid)
        c = connect_once(bench, n, None, None)
        rss = rss_kib(bench.server.pid)
        sub = Subscriber(bench.server.api_port, bench.server.token, PRODUCT_ID, pinning.load)
        try:
            p = publish_step(bench, n, 600.0, args.window, args.payload, sub, messages=args.messages)
        finally:
            sub.close()
        notes.extend(f"fleetgate: {x}" for x in bench.notes)
        command = " ".join(bench.server.command)
    return {
        "server": "fleetgate", "transport": "Noise IK (X25519 device keys) + admission", "clients": n,
        "connected": c["privileged"], "failures": c["failures"], "connects_per_s": c["handshakes_per_s"],
        "connect_p50_ms": c["latency_p50_ms"], "connect_p99_ms": c["latency_p99_ms"],
        "cpu_per_conn_us": c["server_cpu_per_conn_us"], "connect_server_busy": c["server_busy"],
        "connect_load_busy": c["load_busy"],
        "rss_per_conn_kib": round((rss - base) / n, 2),
        "messages": p["sent"], "acked": p["accepted"], "messages_per_s": p["accepted_per_s"],
        "delivered": p["delivered"], "ack_p50_ms": p["ack_p50_ms"], "ack_p99_ms": p["ack_p99_ms"],
        "e2e_p50_ms": p["e2e_p50_ms"], "e2e_p99_ms": p["e2e_p99_ms"],
        "cpu_per_message_us": p["server_cpu_per_event_us"], "publish_server_busy": p["server_busy"],
        "publish_load_busy": p["load_busy"], "stored": p["stored"], "command": command,
    }  # fmt: skip


# ---------------------------------------------------------------------- MQTT brokers


# mosquitto-persist: the closest mosquitto 2 comes to an ack meaning "stored". Its PUBACK never
# waits for the disk; with autosave_on_changes, an autosave_interval of 1 writes the in-memory
# database to disk after every change it counts (retained messages, queued messages,
# subscriptions), once per turn of its event loop. Only a retained message or one queued for
# a persistent session is part of that database, so this peer's clients publish retained.
PERSISTENCE = ["persistence true", "autosave_on_changes true", "autosave_interval 1"]


def _mosquitto_conf(directory: Path, port: int, ca: Path, cert: Path, key: Path, persist: bool = False) -> Path:
    conf = directory / "mosquitto.conf"
    storage = [*PERSISTENCE, f"persistence_location {directory}/"] if persist else ["persistence false"]
    conf.write_text(
        "\n".join([
            "per_listener_settings false", *storage, "log_dest stderr", "log_type error",
            "log_type warning", "max_connections -1", "max_queued_messages 0", "max_inflight_messages 0",
            "set_tcp_nodelay true", "allow_anonymous false",
            f"listener {port} 127.0.0.1", f"cafile {ca}", f"certfile {cert}", f"keyfile {key}",
            "require_certificate true", "use_identity_as_username true",
            # Started as root, mosquitto would switch to user mosquitto, which cannot read our 0600 keys.
            *(["user root"] if os.geteuid() == 0 else []), "",
        ])
    )  # fmt: skip
    return conf


def _amqtt_conf(directory: Path, port: int, ca: Path, cert: Path, key: Path) -> Path:
    conf = directory / "amqtt.yaml"
    conf.write_text(
        "\n".join([
            "listeners:", "  default:", "    type: tcp", f"    bind: 127.0.0.1:{port}", "    max_connections: 0",
            "    ssl: true", f"    cafile: {ca}", f"    certfile: {cert}", f"    keyfile: {key}",
            "plugins:", "  amqtt.plugins.authentication.AnonymousAuthPlugin:", "    allow_anonymous: true", "",
        ])
    )  # fmt: skip
    return conf


class _CpuSampler:
    """(wall, cumulative CPU seconds) of the broker and of the load every `every` s, in a thread."""

    def __init__(self, server: Callable[[], float], load: Callable[[], float], every: float = 0.05) -> None:
        self._read_server, self._read_load, self._every = server, load, every
        self.server: list[tuple[float, float]] = []
        self.load: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peer-cpu", daemon=True)

    def start(self) -> None:
        self._read()  # a reading before the phase's start_at: the readings cover all of it
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _read(self) -> None:
        t = time.monotonic()
        self.server.append((t, self._read_server()))
        self.load.append((t, self._read_load()))

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._read()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the broker exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the broker did not listen on {port} within {limit:g} s")


def _mqtt(name: str, binary: list[str], args: argparse.Namespace, pinning: Pinning, settings: LoadSettings,
          notes: list[str]) -> Row:  # fmt: skip
    n, workers = args.clients, max(1, min(settings.workers, args.clients))
    root = Path(tempfile.mkdtemp(prefix=f"fleetsim-bench-{name}-"))
    pki = make_pki(root / "pki", n + 1)
    (port,) = free_ports(1)
    if name.startswith("mosquitto"):
        persist = name == "mosquitto-persist"
        cmd = [*binary, "-c", str(_mosquitto_conf(root, port, pki.ca, pki.server_cert, pki.server_key, persist))]
        transport = "TLS 1.3, client certificates required (ECDSA P-256)"
        if persist:
            transport += "; persistence on, saved after every change, messages retained"
    else:
        cmd = [*binary, "-c", str(_amqtt_conf(root, port, pki.ca, pki.server_cert, pki.server_key))]
        transport = "TLS 1.3, client certificates verified (ECDSA P-256; amqtt: CERT_OPTIONAL)"
    server_cores = pinning.server

    def pin_self() -> None:
        if server_cores is not None:
            os.sched_setaffinity(0, server_cores)

    log = (root / f"{name}.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin_self)
    pool: ProcessPool | None = None
    try:
        _wait_listening(port, proc)
        ids: list[tuple[str, str | None, str | None]] = [
            (f"device-{i:06d}", str(c), str(k)) for i, (c, k) in enumerate(pki.clients)
        ]
        specs = [MqttSpec(w, "127.0.0.1", port, str(pki.ca), ids[w:n:workers], pinning.load) for w in range(workers)]
        specs.append(MqttSpec(workers, "127.0.0.1", port, str(pki.ca), [ids[n]], pinning.load))  # the subscriber
        pool = ProcessPool(mqtt_worker_main, specs, name=f"bench-{name}")
        pool.broadcast("prepare")
        sources = source_addresses(settings.sources)
        meter = ProcessMeter(proc.pid)
        meter.settle()
        pool.call_one(workers, "subscribe", limit=settings.timeout, sources=sources)
        meter.settle()
        base_rss = rss_kib(proc.pid)
        # connect
        k0, cpu0, load0, wall0 = kernel_counters(), meter.cpu(), pool.cpu(), time.monotonic()
        start_at = wall0 + 0.2
        connecting = _CpuSampler(meter.cpu, pool.cpu)
        connecting.start()
        try:
            answers = pool.call("connect", [dict(count=len(s.clients) if s.index < workers else 0,
                                                 start_at=start_at, limit=settings.timeout, sources=sources)
                                            for s in specs])  # fmt: skip
        finally:
            connecting.stop()
        cpu1 = meter.settle()
        kernel = counter_delta(k0, kernel_counters())
        results = [tuple(r) for a in answers for r in a["results"]]
        ok = [(s, d) for s, d, e in results if not e]
        errors = [str(e) for _, _, e in results if e]
        span = max((d for _, d in ok), default=start_at) - start_at
        rss = rss_kib(proc.pid)
        # publish
        pool.call_one(workers, "sub_reset")
        meter.settle()
        cpu2, load2 = meter.cpu(), pool.cpu()
        start_at = time.monotonic() + 0.2
        per_worker = [
            dict(messages=args.messages if s.index < workers else 0, window=args.window, payload=args.payload,
                 start_at=start_at, drain=15.0, retain=name == "mosquitto-persist")
            for s in specs
        ]  # fmt: skip
        # Readings through the phase, so the busy shares end at the last ack, as the rate does.
        sampler = _CpuSampler(meter.cpu, pool.cpu)
        sampler.start()
        try:
            pubs = pool.call("publish", per_worker)
            acked = sum(int(a["accepted"]) for a in pubs)
            delivered = pool.call_one(workers, "sub_wait", expect=acked, quiet=20.0)
        finally:
            sampler.stop()
        cpu3 = meter.settle()
        last_ack = max(float(a["last_ack"]) for a in pubs)
        pspan = max(1e-9, last_ack - start_at)
        closed = [c for a in pubs for c in a["closed"]]
        if errors:
            notes.append(f"{name}: {len(errors)} connections failed: {count_by(errors)}")
        if closed:
            notes.append(f"{name}: clients lost their link while publishing: {closed[:3]}")
        if kernel:
            notes.append(f"{name} connect: kernel counters moved: {kernel}")
        return {
            "server": name, "transport": transport, "clients": n, "connected": len(ok), "failures": len(errors),
            "connects_per_s": rounded(rate(len(ok), span)),
            **{f"connect_{k}": v for k, v in latency_summary([d - s for s, d in ok]).items() if k != "max_ms"},
            "cpu_per_conn_us": rounded(per_op_us(cpu1 - cpu0, len(ok))),
            "connect_server_busy": rounded(busy_until(connecting.server, start_at, cpu0, start_at + span), 3),
            "connect_load_busy": rounded(busy_until(connecting.load, start_at, load0, start_at + span), 3),
            "rss_per_conn_kib": round((rss - base_rss) / n, 2),
            "messages": sum(int(a["sent"]) for a in pubs), "acked": acked,
            "messages_per_s": rounded(rate(acked, pspan)),
            "delivered": delivered["count"],
            **{f"ack_{k}": v for k, v in latency_summary([x for a in pubs for x in a["ack_latencies"]]).items()
               if k != "max_ms"},
            **{f"e2e_{k}": v for k, v in latency_summary(delivered["latencies"]).items() if k != "max_ms"},
            "cpu_per_message_us": rounded(per_op_us(cpu3 - cpu2, acked)),
            "publish_server_busy": rounded(busy_until(sampler.server, start_at, cpu2, last_ack), 3),
            "publish_load_busy": rounded(busy_until(sampler.load, start_at, load2, last_ack), 3),
            "command": " ".join(cmd),
        }  # fmt: skip
    finally:
        if pool is not None:
            pool.shutdown()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        if settings.keep_data:
            print(f"fleetsim bench: {name} data and log kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
