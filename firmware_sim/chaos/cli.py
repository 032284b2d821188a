"""`fleetsim chaos SCENARIO [options]`: the dispatcher. Each scenario is a module with
`main(argv) -> int`; the first line of its docstring is its line in `fleetsim chaos --help`."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import Any

import httpx

from ..drill_api import ApiError
from ..drill_server import ServerFailed
from .target import ScenarioError

# Scenario name -> module. Each module's main(argv) prints its figures and returns the exit status.
SCENARIOS: dict[str, str] = {
    "junk": "firmware_sim.chaos.junk",
    "malformed": "firmware_sim.chaos.malformed",
    "crash-publish": "firmware_sim.chaos.crash_publish",
    "crash-rollout": "firmware_sim.chaos.crash_rollout",
    "fuzz": "firmware_sim.chaos.fuzz_protocol",
    "flood": "firmware_sim.chaos.flood",
    "webhook-outage": "firmware_sim.chaos.webhook_outage",
}


def summary(module: ModuleType) -> str:
    """The first line of a scenario module's docstring, without its "`fleetsim chaos X`: " head."""
    first = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
    return first.split("`: ", 1)[-1]


def _epilog() -> str:
    lines = ["scenarios:"]
    for name, path in SCENARIOS.items():
        lines.append(f"  {name:<14} {summary(importlib.import_module(path))}")
    lines.append("")
    lines.append("`fleetsim chaos SCENARIO --help` lists a scenario's options; exit status 0 when its checks hold.")
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    chaos = sub.add_parser(
        "chaos",
        help="fault drills: hostile input, malformed messages, kill -9 under load, a protocol fuzzer",
        description="Run one fault drill against a server (one it starts, unless given --server) and print its "
        "figures.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chaos.add_argument("scenario", choices=sorted(SCENARIOS), metavar="SCENARIO", help="one of the scenarios below")
    chaos.add_argument("args", nargs=argparse.REMAINDER, help="the scenario's own options")


def cmd_chaos(args: argparse.Namespace) -> int:
    return run_scenario(args.scenario, list(args.args))


def run_scenario(name: str, argv: list[str]) -> int:
    module = importlib.import_module(SCENARIOS[name])
    main: Any = module.main
    try:
        code: int = main(argv)
    except Exception as exc:
        # Could not run (no server, a server that would not start again, the API refused the
        # setup): one line, not a traceback. Inside a nursery these arrive wrapped in a group.
        reason = _cannot_run(exc)
        if reason is None:
            raise
        print(f"fleetsim chaos {name}: {reason}", file=sys.stderr)
        return 2
    return code


_CANNOT_RUN = (ScenarioError, ServerFailed, ApiError, httpx.HTTPError)


def _cannot_run(exc: BaseException) -> BaseException | None:
    """The could-not-run error `exc` is or holds (alone in its groups), or None."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, _CANNOT_RUN) else None
