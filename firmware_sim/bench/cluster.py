"""`fleetsim bench cluster`: in one run, 1 node on SQLite, 1 node on PostgreSQL and 3 nodes on one
PostgreSQL database, each measured the same way (docs/BENCHMARKS.md, "Cluster (PostgreSQL)"):

1. connect storm: `storm` devices at once, spread over the nodes (time, CPU per connection);
2. publish: `publishers` of them (on every node) publish acked events for `duration` s, one SSE
   subscriber on node 1 (acked events/s delivered to it);
3. devices held: the fleet grows to `hold` devices (`cluster_hold` on three nodes), all
   authenticated and privileged, heartbeating; RSS and descriptors per node, idle CPU;
4. latencies with that fleet held (cluster_probes.py): approve -> STATUS, publish -> stream,
   takeover, across nodes where there are several;
5. three nodes only: `kill -9` of the leader, which holds a third of the fleet: the time until
   another node leads, and until every device it held is privileged again on a survivor (the
   load's devices reconnect to the other nodes, as devices behind a load balancer would).

CPU is counted over the node processes and the PostgreSQL backends of the run's database together.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from .cluster_nodes import CONFIGURATIONS, PROBE_PRODUCT, ClusterBench, open_configuration
from .cluster_probes import Node, ProbeFailed, probe
from .harness import LoadSettings, Phase
from .machine import Pinning, loadavg
from .scenarios import connect_once, publish_step
from .server import PRODUCT_ID
from .stats import latency_summary, per_op_us, rounded
from .subscriber import Subscriber

Row = dict[str, Any]
GROW_STEP = 5_000  # devices brought online per step while the fleet grows
CONFIRM_LIMIT = 300.0  # seconds the store has to confirm the held sessions
RETRY_LIMIT = 120.0  # seconds the devices that failed to come online keep trying
HOLD_TARGET = 50_000  # devices three nodes must hold (issue 15)
APPROVE_P99_MS = 100.0


@dataclass(frozen=True, slots=True)
class ClusterParams:
    configurations: tuple[str, ...] = ("sqlite", "pg", "pg3")
    storm: int = 5_000
    hold: int = 15_000  # one node: what one process holds with room under its 20,000 descriptors
    cluster_hold: int = 50_000
    publishers: int = 100
    duration: float = 5.0
    window: int = 32
    payload: int = 64
    probes: int = 30
    hold_window: float = 10.0
    revive_limit: float = 300.0
    kill_hold: int = 36_000  # held when the leader is killed: two survivors take 18,000 each


def run_cluster(params: ClusterParams, pinning: Pinning, settings: LoadSettings) -> dict[str, Any]:
    rows: list[Row] = []
    for name in params.configurations:
        config = CONFIGURATIONS[name]
        hold = params.cluster_hold if config.nodes > 1 else params.hold
        print(f"{config.label}: {hold:,} devices, storm {params.storm:,}", flush=True)
        with open_configuration(config, hold, params.probes, pinning, settings, settings.database) as cb:
            rows.append(measure(cb, params, hold))
    return {"rows": rows, "targets": _targets(rows), "notes": [n for r in rows for n in r["notes"]]}


def measure(cb: ClusterBench, params: ClusterParams, hold: int) -> Row:
    bench = cb.bench
    row: Row = {"configuration": cb.config.label, "name": cb.config.name, "nodes": cb.config.nodes,
                "store": "postgresql" if cb.config.postgres else "sqlite", "devices": hold,
                "loadavg_at_start": loadavg()}  # fmt: skip
    storm = min(params.storm, hold)
    row["storm"] = connect_once(bench, storm, None, None)
    _progress("storm", row["storm"], ("privileged", "failures", "handshakes_per_s", "last_privileged_s",
                                      "server_cpu_per_conn_us", "server_busy"))  # fmt: skip

    publishers = min(params.publishers, storm)
    node1 = cb.nodes[0]
    subscriber = Subscriber(node1.api_port, node1.token, PRODUCT_ID, cb.bench.pinning.load)
    try:
        row["publish"] = publish_step(bench, publishers, params.duration, params.window, params.payload, subscriber)
    finally:
        subscriber.close()
    _progress("publish", row["publish"], ("publishers", "accepted_per_s", "delivered_per_s", "e2e_p50_ms",
                                          "e2e_p99_ms", "server_cpu_per_event_us"))  # fmt: skip

    row["hold"] = hold_fleet(cb, hold, params.hold_window)
    _progress("hold", row["hold"], ("privileged", "per_node", "grow_s", "idle_busy"))

    nodes = [Node(f"http://127.0.0.1:{s.api_port}", s.device_port) for s in cb.nodes]
    try:
        row["latency"] = probe(nodes, node1.token, cb.public_key, cb.probes, PROBE_PRODUCT)
    except ProbeFailed as exc:  # the other figures stand; the report says what failed
        row["latency"] = {"error": str(exc)}
        bench.note(f"{cb.config.label}: the latency probes failed: {exc}")
    _progress("latency", row["latency"], ("approve_ms", "publish_to_stream_ms", "takeover_ms"))

    if cb.config.nodes > 1:
        row["failover"] = kill_leader(cb, params.revive_limit, params.kill_hold)
        _progress("failover", row["failover"], ("leader_failover_ms", "devices_on_killed_node", "back",
                                                "all_back_s"))  # fmt: skip
    errors = [s.log_tail_errors() for s in cb.nodes]
    for i, lines in enumerate(errors):
        if lines:
            bench.note(f"{cb.config.label}: node n{i + 1} logged errors: {lines[-2:]}")
    row["notes"] = [f"{cb.config.label}: {n}" if not n.startswith(cb.config.label) else n for n in bench.notes]
    return row


def hold_fleet(cb: ClusterBench, hold: int, window: float) -> Row:
    """Grow the fleet to `hold` online devices (512 handshakes in flight), then measure it idle."""
    bench = cb.bench
    start = time.monotonic()
    results: list[tuple[float, float, str]] = []
    for step in range(bench.online + GROW_STEP, hold + GROW_STEP, GROW_STEP):  # each step within the
        results += bench.grow(min(step, hold))  # devices' 60 s limit, which runs while they queue
    ports = [s.device_port for s in cb.nodes]
    retried = bench.pool.retry(ports, RETRY_LIMIT, bench.sources)  # the ones that failed, again, as devices do
    grow_s = time.monotonic() - start
    per_port = bench.pool.count()
    confirmed_s, confirmed = _store_confirms(cb, sum(per_port.values()))
    bench.settle()
    nodes0, backends0 = cb.meter.split()
    phase = Phase(bench, f"hold-{hold}").start()
    time.sleep(window)
    phase.stop()
    phase.done()
    nodes1, backends1 = cb.meter.split()
    names = {s.device_port: f"n{i + 1}" for i, s in enumerate(cb.nodes)}
    return {
        "requested": hold,
        "privileged": sum(per_port.values()),
        "per_node": {names.get(p, str(p)): n for p, n in sorted(per_port.items())},
        "store_sessions_per_node": cb.sessions_per_node(),
        "store_confirmed": confirmed,  # live sessions in the store once it caught up (or at the limit)
        "store_confirmed_after_s": confirmed_s,  # after the last device was privileged; None: not in the limit
        "grow_failures": sum(1 for r in results if r[2]),
        "retried": len(retried),
        "retried_back": sum(1 for r in retried if r[1] and not r[2]),
        "retry_failures": sorted({r[2] for r in retried if not r[1]})[:3],
        "grow_s": round(grow_s, 1),
        "load_workers": bench.pool.workers,
        "source_addresses": len(bench.sources),
        "nodes": cb.node_readings(),
        "idle_cpu_s": round(phase.server_cpu, 3),
        "idle_busy": rounded(phase.server_cpu / phase.wall, 3),
        "idle_busy_nodes": rounded((nodes1 - nodes0) / phase.wall, 3),
        "idle_busy_backends": rounded((backends1 - backends0) / phase.wall, 3),
        "idle_cpu_per_conn_per_min_us": rounded(per_op_us(phase.server_cpu / (phase.wall / 60), hold), 1),
        "window_s": round(phase.wall, 1),
    }


def _store_confirms(cb: ClusterBench, privileged: int) -> tuple[float | None, int | None]:
    """A device is privileged at WELCOME; its session is confirmed in the store when READY's write
    commits. On PostgreSQL, wait (at most CONFIRM_LIMIT s) until the store holds every session the
    load holds: (seconds it took or None, live sessions then)."""
    if cb.database is None:
        return None, None
    start = time.monotonic()
    while True:
        stored = sum(cb.sessions_per_node().values())
        if stored >= privileged:
            return round(time.monotonic() - start, 1), stored
        if time.monotonic() - start > CONFIRM_LIMIT:
            return None, stored
        time.sleep(1.0)


def kill_leader(cb: ClusterBench, limit: float, keep: int) -> Row:
    """kill -9 of the leader; how long until another node leads, and until each device it held is
    privileged again on a survivor. First the fleet is cut to `keep` devices: what the survivors can
    hold between them (each node is one process, under its descriptor limit)."""
    trimmed = 0
    if cb.bench.online > keep:
        trimmed = cb.bench.pool.trim(keep)
        cb.bench.online = keep
        cb.bench.settle()
    deadline = time.monotonic() + 10
    leader = cb.leader()
    while leader is None and time.monotonic() < deadline:
        time.sleep(0.05)
        leader = cb.leader()
    if leader is None:
        return {"error": "no leader within 10 s"}
    victim = next(s for i, s in enumerate(cb.nodes) if f"n{i + 1}" == leader)
    survivors = [s.device_port for s in cb.nodes if s is not victim]
    counts = cb.bench.pool.count()
    held, held_total = counts.get(victim.device_port, 0), sum(counts.values())
    new_leader: list[tuple[str, float]] = []

    def watch(killed_at: float) -> None:
        while time.monotonic() - killed_at < 60:
            now = cb.leader()
            if now is not None and now != leader:
                new_leader.append((now, time.monotonic() - killed_at))
                return
            time.sleep(0.02)

    assert victim.proc is not None
    killed_at = time.monotonic()
    victim.proc.kill()
    watcher = threading.Thread(target=watch, args=(killed_at,), daemon=True)
    watcher.start()
    results = cb.bench.pool.revive(victim.device_port, survivors, limit, cb.bench.sources)
    watcher.join(60)
    back = [w - killed_at for _, w, e, _ in results if w and not e]
    noticed = [n - killed_at for n, _, _, _ in results]
    failures = [e for _, w, e, _ in results if not w]
    time.sleep(1.0)
    return {
        "held_at_kill": held_total,
        "trimmed_before": trimmed,
        "killed": leader,
        "new_leader": new_leader[0][0] if new_leader else None,
        "leader_failover_ms": round(new_leader[0][1] * 1000, 1) if new_leader else None,
        "devices_on_killed_node": held,
        "reconnecting": len(results),
        "back": len(back),
        "failed": len(failures),
        "failure_reasons": sorted(set(failures))[:3],
        "attempts_max": max((a for _, _, _, a in results), default=0),
        "all_back_s": round(max(back), 2) if back else None,
        **{f"back_{k}": v for k, v in latency_summary(back).items()},
        "links_ended_within_s": round(max(noticed), 3) if noticed else None,
        "privileged_per_port_after": {str(k): v for k, v in cb.bench.pool.count().items()},
        "store_sessions_per_node_after": cb.sessions_per_node(),
    }


def _targets(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        if r["nodes"] > 1:
            held = r["hold"]["privileged"]
            out.append(f"{r['configuration']} hold at least {HOLD_TARGET:,} authenticated devices: {held:,} "
                       f"({'met' if held >= HOLD_TARGET else 'MISSED'})")  # fmt: skip
            p99 = (r["latency"].get("approve_ms") or {}).get("p99_ms")
            out.append(f"{r['configuration']} approve -> STATUS across nodes p99 <= {APPROVE_P99_MS:g} ms: {p99} ms "
                       f"({'met' if p99 is not None and p99 <= APPROVE_P99_MS else 'MISSED'})")  # fmt: skip
    return out


def _progress(what: str, row: Row, keys: tuple[str, ...]) -> None:
    print(f"  {what}: " + ", ".join(f"{k}={row.get(k)}" for k in keys), flush=True)
