"""`fleetsim drill`: its arguments, and running it from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import trio

from .drill import DrillInterrupted, run_drill
from .drill_api import ApiError
from .drill_config import DEFAULT_MIX, ERROR_ACTIONS, EXPECTATIONS, STRATEGIES, DrillConfig, DrillConfigError
from .drill_plot import write_plot
from .drill_report import Sample, summary_lines
from .drill_server import ServerFailed

__all__ = ["DrillFailedToRun", "DrillInterrupted", "add_parser", "cmd_drill", "config_from_args"]


class DrillFailedToRun(Exception):
    """The drill could not be run at all (bad arguments, no server): exit 2, not 1."""


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


_MIX_HELP = DEFAULT_MIX.replace("%", "%%")  # argparse %-formats help text: the mix's own % signs are doubled


def add_parser(sub: Any) -> None:
    d = sub.add_parser(
        "drill",
        help="run an OTA rollout drill against a fresh server",
        description="Start a server, bring up a simulated fleet with injected faults, roll out firmware "
        "and check that every device ended where it should.",
    )
    d.add_argument("--devices", type=int, default=200, metavar="N", help="fleet size (default 200)")
    d.add_argument(
        "--mix",
        default=DEFAULT_MIX,
        help=f"behaviours, as percentages or counts (default {_MIX_HELP}); 'none' for a clean fleet",
    )
    d.add_argument("--size", type=int, default=262_144, metavar="BYTES", help="firmware image size (default 256 KiB)")
    d.add_argument("--strategy", choices=STRATEGIES, default="all")
    d.add_argument("--stages", default="5%,25%,100%", help="staged: cumulative percentages or counts")
    d.add_argument("--max-concurrent", type=int, default=50, metavar="K", help="transfers in flight (default 50)")
    d.add_argument("--retries", type=int, default=2, metavar="R", help="further attempts per device (default 2)")
    d.add_argument("--retry-delay", type=float, metavar="S", help="seconds before a retry (default: the server's)")
    d.add_argument("--device-timeout", type=float, default=120.0, metavar="S", help="offer to installed (default 120)")
    d.add_argument("--success-threshold", type=_fraction, default=0.9, metavar="F", help="to open a stage (0.9)")
    d.add_argument("--error-threshold", type=_fraction, default=0.1, metavar="F", help="fires --on-error (0.1)")
    d.add_argument("--on-error", choices=ERROR_ACTIONS, default="pause")
    d.add_argument("--rate-start", type=float, help="exponential: offers per minute at first")
    d.add_argument("--rate-factor", type=float, help="exponential: growth factor of the rate")
    d.add_argument("--rate-every", type=int, help="exponential: confirmations between two increases")
    d.add_argument(
        "--restart-at",
        type=_fraction,
        metavar="FRACTION",
        help="restart the server once this fraction of the fleet is confirmed",
    )
    d.add_argument("--expect", choices=EXPECTATIONS, default="completed", help="how the rollout must end")
    d.add_argument(
        "--late-window",
        type=float,
        default=5.0,
        metavar="S",
        help="late devices join 1..S seconds after the rollout starts (default 5)",
    )
    d.add_argument("--seed", type=int, default=0, help="chooses which devices get which fault (default 0)")
    d.add_argument("--json", type=Path, metavar="OUT", help="write the full report as JSON")
    d.add_argument("--plot", type=Path, metavar="OUT.png", help="write a PNG of devices per state over time")
    d.add_argument("--timeout", type=float, default=600.0, metavar="S", help="give up after S seconds (default 600)")
    d.add_argument("--server-data", type=Path, metavar="DIR", help="the server's data directory (kept; must be empty)")
    _add_debug(d)


def _add_debug(d: Any) -> None:
    d.add_argument(
        "--server-log-level",
        choices=["debug", "info", "warning", "error"],
        default="warning",
        help="the server's log (next to its data directory; kept when the drill fails)",
    )
    d.add_argument(
        "--reboot-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds a device waits after reporting a verified image before it leaves (default 0)",
    )


def config_from_args(args: argparse.Namespace) -> DrillConfig:
    return DrillConfig(
        devices=args.devices, mix="" if args.mix.strip().lower() == "none" else args.mix, size=args.size,
        strategy=args.strategy, stages=args.stages, max_concurrent=args.max_concurrent, retries=args.retries,
        retry_delay=args.retry_delay, device_timeout=args.device_timeout,
        success_threshold=args.success_threshold, error_threshold=args.error_threshold, on_error=args.on_error,
        rate_start=args.rate_start, rate_factor=args.rate_factor, rate_increase_every=args.rate_every,
        restart_at=args.restart_at, expect=args.expect, late_window=args.late_window, seed=args.seed,
        json_out=args.json, plot_out=args.plot, timeout=args.timeout, server_data=args.server_data,
        progress=sys.stderr.isatty(), server_log_level=args.server_log_level, reboot_delay=args.reboot_delay,
    )  # fmt: skip


def cmd_drill(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        config.validate()
        report = trio.run(run_drill, config)
    except (DrillConfigError, ServerFailed, ApiError) as exc:
        raise DrillFailedToRun(f"drill: {exc}") from None
    if config.json_out is not None:
        config.json_out.write_text(json.dumps(report, indent=1) + "\n")
    if config.plot_out is not None:
        rollout: Any = report.get("rollout") or {}
        series = [Sample(s["t"], s["state"], s["counts"]) for s in report["series"]]  # type: ignore[attr-defined]
        title = (
            f"fleetsim drill: {config.devices} devices, {config.strategy}, "
            f"rollout {rollout.get('state', 'not created')}"
        )
        write_plot(config.plot_out, series, title, report["server_restarts_s"], report["rollout_started_s"])  # type: ignore[arg-type]
    for line in summary_lines(report):
        print(line)
    if "server_log" in report:
        print(f"server data and log kept: {report['server_data']}, {report['server_log']}")
    return 0 if report["passed"] else 1
