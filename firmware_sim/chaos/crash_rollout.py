"""`fleetsim chaos crash-rollout`: kill -9 the server R times during a rollout; it still completes.

The rollout drill (`fleetsim drill`, firmware_sim/drill.py) on a clean fleet of D devices, with the
server killed with SIGKILL and started again on the same data directory each time another
1/(R+1) of the fleet has confirmed the new version. The rollout must complete with every device
confirmed and running the new version.
"""

from __future__ import annotations

import argparse
from typing import Any

import trio

from ..drill import NEW, run_drill
from ..drill_api import ApiError
from ..drill_config import STRATEGIES, DrillConfig, DrillConfigError
from ..drill_server import ServerFailed
from .report import Check, emit
from .target import ScenarioError, add_json_option, positive, positive_float


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetsim chaos crash-rollout", description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=positive, default=200, metavar="D", help="fleet size (default 200)")
    p.add_argument("--kills", type=int, default=3, metavar="R", help="kill -9s during the rollout (default 3)")
    p.add_argument("--size", type=positive, default=65_536, metavar="BYTES", help="image size (default 64 KiB)")
    p.add_argument("--strategy", choices=STRATEGIES, default="staged", help="the rollout's strategy (staged)")
    p.add_argument("--max-concurrent", type=positive, default=50, metavar="K", help="transfers at once (50)")
    p.add_argument("--timeout", type=positive_float, default=600.0, metavar="S", help="give up after (600)")
    add_json_option(p)
    return p


def kill_points(kills: int) -> tuple[float, ...]:
    """Fractions of the fleet confirmed at which to kill: evenly spread, never at the very end."""
    return tuple(round((i + 1) / (kills + 1), 4) for i in range(kills))


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.kills < 0:
        raise ScenarioError("--kills must be 0 or more")
    config = DrillConfig(
        devices=args.devices, mix="", size=args.size, strategy=args.strategy, stages="10%,50%,100%",
        max_concurrent=args.max_concurrent, retry_delay=0.5, device_timeout=60.0, timeout=args.timeout,
        kill_at=kill_points(args.kills),
    )  # fmt: skip
    try:
        config.validate()
        report = trio.run(run_drill, config)
    except (DrillConfigError, ServerFailed, ApiError, OSError) as exc:
        raise ScenarioError(f"crash-rollout: {exc}") from None
    return _report(args, report)


def _report(args: argparse.Namespace, report: dict[str, Any]) -> int:
    rollout = report.get("rollout") or {}
    devices = report["devices"]
    on_new = sum(d["running_version"] == NEW for d in devices)
    confirmed = sum((d.get("server") or {}).get("state") == "confirmed" for d in devices)
    kills = report["server_kills_s"]
    started = report["rollout_started_s"]
    finished = report["series"][-1]["t"] if report["series"] else None
    rollout_s = round(finished - started, 1) if finished is not None and started is not None else None
    figures: dict[str, object] = {
        "devices": len(devices), "kills_s": kills, "rollout_state": rollout.get("state"),
        "confirmed": confirmed, "running_new": on_new, "rollout_s": rollout_s, "elapsed_s": report["elapsed_s"],
        "counts": rollout.get("counts"), "drill_checks": report["checks"],
    }  # fmt: skip
    failed_drill = [c["name"] for c in report["checks"] if not c["ok"]]
    checks = [
        Check("the rollout completed", rollout.get("state") == "completed", str(rollout.get("state"))),
        Check("every device confirmed on the new version", confirmed == on_new == len(devices),
              f"{confirmed} confirmed, {on_new} running v{NEW}, of {len(devices)}"),
        Check(f"the server was killed {args.kills} times", len(kills) == args.kills,
              ", ".join(f"at {t:g} s" for t in kills)),
        Check("the drill's own checks", not failed_drill, ", ".join(failed_drill)),
    ]  # fmt: skip
    lines = [
        f"{len(devices)} devices, rollout {rollout.get('state')} in {rollout_s} s "
        f"({report['elapsed_s']} s with the fleet coming online)",
        "kill -9 at " + (", ".join(f"{t:g} s" for t in kills) or "never"),
        f"{confirmed} confirmed, {on_new} running v{NEW}",
    ]
    if "server_log" in report:
        lines.append(f"server data and log kept: {report['server_data']}, {report['server_log']}")
    return emit("crash-rollout", figures, checks, lines, args.json)
