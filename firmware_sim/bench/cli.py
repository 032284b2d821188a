"""`fleetsim bench SCENARIO` / `python -m firmware_sim.bench SCENARIO`.

    python -m firmware_sim.bench connect --devices 1k,5k,10k,19k [--rate 2000] --json c.json --plot c.png
    python -m firmware_sim.bench hold --devices 1k,5k,10k,19k --window 60
    python -m firmware_sim.bench publish --publishers 1,10,100,1000 --duration 10
    python -m firmware_sim.bench ota --devices 1,10,50 --size-mb 4
    python -m firmware_sim.bench peers --clients 1000 --messages 100
    python -m firmware_sim.bench cluster --server-database postgresql:///fleetgate_bench

Never part of the test run: each run starts its own `fleetgate serve` (and peers' brokers) on
loopback, in a temporary directory, and removes it afterwards.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import report, targets
from .harness import LoadSettings, open_bench
from .machine import kernel_limits, machine_facts, plan_pinning
from .server import PRODUCT_ID, ServerFailed
from .stats import parse_sizes

SCENARIOS = ("connect", "hold", "publish", "ota", "peers", "cluster")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=4, help="load processes (default 4)")
    p.add_argument("--sources", type=int, default=4, help="loopback source addresses 127.0.0.2.. (default 4)")
    p.add_argument("--timeout", type=float, default=60.0, help="per-device limit for connect + handshake (s)")
    p.add_argument("--server-log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="the server's log level (default info, as `fleetgate serve`)")  # fmt: skip
    p.add_argument("--server-max-handshakes", type=int, metavar="N",
                   help="the server's `--max-handshakes` (default: its own, 2048)")  # fmt: skip
    p.add_argument("--server-database", metavar="URL",
                   help="run the server on PostgreSQL: a fresh database beside this URL's (dropped after); "
                   "its backends' CPU counts as the server's (default: SQLite)")  # fmt: skip
    p.add_argument("--no-pin", action="store_true", help="do not pin the server and the load to separate cores")
    p.add_argument("--keep-data", action="store_true", help="keep the server's data directory and log")
    p.add_argument(
        "--profile",
        type=Path,
        metavar="OUT.txt",
        help="sample the server with py-spy during the run (collapsed stacks + hot-spot summary)",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="write the full result as JSON")
    p.add_argument("--plot", type=Path, metavar="OUT.png", help="write the scenario's scaling plot")


def add_subcommands(sub: Any) -> None:
    c = sub.add_parser("connect", help="N devices connect: a storm, or at a fixed rate")
    c.add_argument("--devices", default="1k,5k,10k", help="fleet sizes, e.g. 1k,5k,10k,19k (default 1k,5k,10k)")
    c.add_argument("--rate", type=float, help="connections per second (default: all at once, a storm)")
    c.add_argument("--concurrency", type=int, help="handshakes in flight at most (default: no limit)")
    h = sub.add_parser("hold", help="N idle authenticated devices with heartbeats: RSS and CPU per connection")
    h.add_argument("--devices", default="1k,5k,10k,19k", help="steps of the idle fleet (default 1k,5k,10k,19k)")
    h.add_argument("--window", type=float, default=60.0, help="seconds measured at each step (default 60)")
    pu = sub.add_parser("publish", help="M devices publish acked events, one product-stream subscriber")
    pu.add_argument("--publishers", default="1,10,100,1000", help="publisher counts (default 1,10,100,1000)")
    pu.add_argument("--duration", type=float, default=10.0, help="seconds of publishing per step (default 10)")
    pu.add_argument("--window", type=int, default=32, help="unacknowledged publishes per device (default 32)")
    pu.add_argument("--payload", type=int, default=64, help="event data bytes (default 64)")
    o = sub.add_parser("ota", help="a firmware of S MB to K devices at once")
    o.add_argument("--devices", default="1,10,50", help="device counts (default 1,10,50)")
    o.add_argument("--size-mb", type=float, default=4.0, help="image size in MB of 10^6 bytes (default 4, max 16.7)")
    o.add_argument("--ota-timeout", type=float, default=300.0, help="seconds for all transfers of a step")
    pe = sub.add_parser("peers", help="connect + QoS 1 publish against Fleetgate, mosquitto (TLS) and amqtt")
    pe.add_argument("--clients", type=int, default=1000, help="clients (default 1000)")
    pe.add_argument("--messages", type=int, default=100, help="acked messages per client (default 100)")
    pe.add_argument("--payload", type=int, default=64, help="message bytes (default 64)")
    pe.add_argument("--window", type=int, default=16, help="unacknowledged messages per client (default 16)")
    pe.add_argument(
        "--peers",
        default="fleetgate,mosquitto,mosquitto-persist,amqtt",
        help="which servers (default all four; mosquitto-persist: persistence on)",
    )
    cl = sub.add_parser("cluster", help="1 x SQLite, 1 x PostgreSQL, 3 x PostgreSQL: held, storm, publish, latencies")
    cl.add_argument("--configurations", default="sqlite,pg,pg3",
                    help="which of sqlite, pg (one node), pg3 (three nodes), in order (default all three)")  # fmt: skip
    cl.add_argument("--storm", default="5k", help="devices in the connect storm (default 5k)")
    cl.add_argument("--hold", default="15k", help="devices one node holds (default 15k: one process's fds allow ~19k)")
    cl.add_argument("--cluster-hold", default="50k", help="devices three nodes hold (default 50k)")
    cl.add_argument("--publishers", type=int, default=100, help="publishing devices, spread over the nodes (100)")
    cl.add_argument("--duration", type=float, default=5.0, help="seconds of publishing (default 5)")
    cl.add_argument("--probes", type=int, default=30, help="samples of each cross-node latency (default 30)")
    cl.add_argument("--hold-window", type=float, default=10.0, help="seconds the held fleet is measured idle")
    cl.add_argument("--kill-hold", default="36k",
                    help="devices held when the leader is killed (default 36k: the two survivors' share must fit "
                    "under each process's descriptor limit)")  # fmt: skip
    cl.add_argument("--revive-limit", type=float, default=300.0,
                    help="seconds the killed node's devices have to be privileged again elsewhere")  # fmt: skip
    for p in (c, h, pu, o, pe, cl):
        _common(p)


def add_parser(sub: Any) -> None:
    """For firmware_sim/cli.py: `fleetsim bench SCENARIO ...`."""
    bench = sub.add_parser("bench", help="benchmarks: connect, hold, publish, ota, peers (docs/BENCHMARKS.md)")
    add_subcommands(bench.add_subparsers(dest="scenario", required=True))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m firmware_sim.bench", description="Fleetgate benchmarks")
    add_subcommands(parser.add_subparsers(dest="scenario", required=True))
    return parser


def _settings(args: argparse.Namespace) -> LoadSettings:
    return LoadSettings(workers=args.workers, sources=args.sources, timeout=args.timeout,
                        log_level=args.server_log_level, max_handshakes=args.server_max_handshakes,
                        keep_data=args.keep_data, database=args.server_database,
                        profile=args.profile)  # fmt: skip


def run(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    scenario: str = args.scenario
    pinning = plan_pinning(not args.no_pin)
    settings = _settings(args)
    result: dict[str, Any] = {
        "scenario": scenario,
        "machine": machine_facts(list(argv)),
        "kernel_limits": kernel_limits(),
        "pinning": pinning.as_json(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "run"},
    }
    if scenario == "cluster":
        result.update(_run_cluster(args, pinning, settings))
        return result
    if scenario == "peers":
        from .peers import run_peers

        result.update(run_peers(args, pinning, settings))
    else:
        result.update(_run_fleetgate(scenario, args, pinning, settings))
    result["targets"] = targets.check(scenario, result)
    return result


def _run_fleetgate(scenario: str, args: argparse.Namespace, pinning: Any, settings: LoadSettings) -> dict[str, Any]:
    from . import scenarios
    from .subscriber import Subscriber

    sizes = parse_sizes(args.publishers if scenario == "publish" else args.devices)
    publish_rate = 1e6 if scenario == "publish" else None
    with open_bench(max(sizes), pinning, settings, publish_rate=publish_rate) as bench:
        if scenario == "connect":
            rows = scenarios.run_connect(bench, sizes, args.rate, args.concurrency)
        elif scenario == "hold":
            rows = scenarios.run_hold(bench, sizes, args.window)
        elif scenario == "publish":
            sub = Subscriber(bench.server.api_port, bench.server.token, PRODUCT_ID, pinning.load)
            try:
                rows = scenarios.run_publish(bench, sizes, args.duration, args.window, args.payload, sub)
            finally:
                sub.close()
        else:
            size = int(args.size_mb * 1e6)
            rows = scenarios.run_ota(bench, sizes, size, args.ota_timeout)
        errors = bench.server.log_tail_errors()
        if errors:
            bench.note(f"the server logged errors: {errors}")
        return {"server": bench.server_info(), "rows": rows, "notes": bench.notes}


def _run_cluster(args: argparse.Namespace, pinning: Any, settings: LoadSettings) -> dict[str, Any]:
    from .cluster import ClusterParams, run_cluster
    from .cluster_nodes import CONFIGURATIONS

    names = tuple(n.strip() for n in args.configurations.split(",") if n.strip())
    unknown = [n for n in names if n not in CONFIGURATIONS]
    if unknown or not names:
        raise ServerFailed(f"--configurations: unknown {unknown or names}; choose from {', '.join(CONFIGURATIONS)}")
    if any(CONFIGURATIONS[n].postgres for n in names) and not args.server_database:
        raise ServerFailed("the pg and pg3 configurations need --server-database URL (a PostgreSQL server)")
    storm, hold, cluster_hold, kill_hold = (
        parse_sizes(x)[0] for x in (args.storm, args.hold, args.cluster_hold, args.kill_hold)
    )
    params = ClusterParams(names, storm, hold, cluster_hold, args.publishers, args.duration, probes=args.probes,
                           hold_window=args.hold_window, revive_limit=args.revive_limit,
                           kill_hold=kill_hold)  # fmt: skip
    return run_cluster(params, pinning, settings)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return cmd_bench(args, argv)


def _render(result: dict[str, Any]) -> str:
    if result["scenario"] == "cluster":
        from .cluster_report import render

        return render(result)
    return report.render(result)


def cmd_bench(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Run a scenario, print the report, write --json and --plot. For `fleetsim bench` too."""
    if argv is None:
        argv = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "bench" else sys.argv[1:]
    try:
        result = run(args, argv)
    except KeyboardInterrupt:
        print("fleetsim bench: interrupted", file=sys.stderr)
        return 130
    except ServerFailed as exc:  # the server's own words say why: no traceback of ours to add
        print(f"fleetsim bench: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a run that cannot finish says why (and where)
        traceback.print_exc()
        print(f"fleetsim bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    text = _render(result)
    print(text)
    if args.json:
        report.write_json(args.json, result)
        print(f"\nwrote {args.json}")
        if result["scenario"] == "cluster":  # its table beside the JSON, for the docs
            args.json.with_suffix(".txt").write_text(text + "\n")
            print(f"wrote {args.json.with_suffix('.txt')}")
    if args.plot and result.get("rows") and result["scenario"] != "cluster":
        from .plot import write_plot

        write_plot(args.plot, result)
        print(f"wrote {args.plot}")
    return 0
