"""`fleetgate rollout`: create, list, show, pause, resume, abort. One API call each (show: two)."""

from __future__ import annotations

import argparse
from typing import Any

from ..rules.rollout_model import DeviceState
from .client import ApiClient, CliError
from .operator import emit, ok

LIST_COLUMNS = ["id", "version", "state", "strategy", "devices", "confirmed", "failed", "in_flight", "state_reason"]
DEVICE_COLUMNS = ["id", "stage", "phase", "state", "attempts", "from_version", "reason"]
STATE_ORDER = [s.value for s in DeviceState]  # the table's columns, in the rollout's order


def _row(r: dict[str, Any]) -> dict[str, Any]:
    c = r["counts"]
    return {**r, "devices": r["target"]["devices"], "confirmed": c["confirmed"], "failed": c["failed"],
            "in_flight": c["offered"] + c["downloading"]}  # fmt: skip


def create(api: ApiClient, args: argparse.Namespace) -> int:
    targets = sum((args.default, bool(args.group), bool(args.device)))
    if targets != 1:
        raise CliError("give exactly one target: --default, --group G... or --device ID...")
    body: dict[str, Any] = {
        "version": args.version, "product_default": args.default, "groups": args.group or [],
        "devices": args.device or [], "strategy": args.strategy, "max_concurrent": args.max_concurrent,
        "retries": args.retries, "device_timeout": args.device_timeout, "retry_delay": args.retry_delay,
        "success_threshold": args.success_threshold, "error_threshold": args.error_threshold,
        "error_action": args.on_error,
    }  # fmt: skip
    if args.stages:
        body["stages"] = [s.strip() for s in args.stages.split(",") if s.strip()]
    if args.strategy == "exponential":
        body |= {"rate_start": args.rate_start, "rate_factor": args.rate_factor,
                 "rate_increase_every": args.rate_increase_every}  # fmt: skip
    if args.preview:
        preview = api.post(f"/v1/products/{args.product}/rollouts/preview", json=body)
        text = (f"the rollout would update {preview['devices']} device(s) in stages of "
                f"{'/'.join(map(str, preview['stages']))}, first {', '.join(preview['sample'][:5])}")  # fmt: skip
        return ok(args, preview, text)
    rollout = api.post(f"/v1/products/{args.product}/rollouts", json=body)["rollout"]
    stages = "/".join(map(str, rollout["stages"]))
    return ok(args, rollout, f"rollout {rollout['id']} started: version {rollout['version']} to "
              f"{rollout['target']['devices']} device(s), {rollout['strategy']} (stages {stages})")  # fmt: skip


def list_rollouts(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get(f"/v1/products/{args.product}/rollouts")
    return emit(args, data, LIST_COLUMNS, [_row(r) for r in data["rollouts"]])


def show(api: ApiClient, args: argparse.Namespace) -> int:
    rollout = api.get(f"/v1/products/{args.product}/rollouts/{args.rollout}")["rollout"]
    devices: list[dict[str, Any]] = []
    if args.devices:
        page, pages = 1, 1
        while page <= pages:
            data = api.get(f"/v1/products/{args.product}/rollouts/{args.rollout}/devices?page={page}&per_page=100")
            devices += data["devices"]
            pages, page = data["meta"]["total_pages"], page + 1
    if args.json:
        return ok(args, {"rollout": rollout, **({"devices": devices} if args.devices else {})}, "")
    r = rollout
    print(f"rollout {r['id']}: version {r['version']} of product {r['product_id']}, {r['state']}"
          f" ({r['state_reason']})")  # fmt: skip
    # Stages are numbered from 0 everywhere (this header, both tables, --json): as the API numbers them.
    last = len(r["stages"]) - 1
    print(f"strategy {r['strategy']}, at stage {r['current_stage']} (stages 0-{last}), at most"
          f" {r['max_concurrent']} in flight, {r['retries']} retries, timeout {r['device_timeout']:g} s")  # fmt: skip
    print(f"thresholds: success {r['success_threshold']:g}, error {r['error_threshold']:g} -> {r['error_action']}"
          f"{' (fired)' if r['error_action_fired'] else ''}")  # fmt: skip
    stage_rows = [{"stage": s["stage"], "size": s["size"], **s["counts"]} for s in r["stage_counts"]]
    stage_rows.append({"stage": "all", "size": r["target"]["devices"], **r["counts"]})
    emit(args, None, ["stage", "size", *STATE_ORDER], stage_rows)
    if args.devices:
        print()
        emit(args, None, DEVICE_COLUMNS, devices)
    return 0


def act(api: ApiClient, args: argparse.Namespace) -> int:
    rollout = api.post(f"/v1/products/{args.product}/rollouts/{args.rollout}/{args.action}")["rollout"]
    return ok(args, rollout, f"rollout {rollout['id']}: {rollout['state']} ({rollout['state_reason']})")


def add_commands(sub: Any, cmd: Any, pid: tuple[str, dict[str, Any]]) -> None:
    """Register `fleetgate rollout ...` with the CLI's command helper `cmd`."""
    rollout = sub.add_parser("rollout", help="staged firmware rollouts").add_subparsers(required=True)
    rid = ("rollout", {"type": int, "help": "rollout ID"})
    cmd(
        rollout, "create", create, "start rolling a firmware version out", pid,
        ("version", {"type": int, "help": "firmware version (uploaded to the product)"}),
        ("--default", {"action": "store_true", "help": "target: every member of the product"}),
        ("--group", {"action": "extend", "nargs": "+", "metavar": "GROUP", "help": "target: these groups"}),
        ("--device", {"action": "extend", "nargs": "+", "metavar": "ID", "help": "target: these devices"}),
        ("--strategy", {"choices": ["all", "staged", "exponential"], "default": "all"}),
        ("--stages", {"help": "staged: cumulative, e.g. 5%%,25%%,100%% or 10,100 (a last stage of all is implied)"}),
        ("--rate-start", {"type": float, "default": 10.0, "help": "exponential: offers per minute at first"}),
        ("--rate-factor", {"type": float, "default": 2.0, "help": "exponential: rate growth factor"}),
        ("--rate-increase-every", {"type": int, "default": 10, "help": "exponential: grow after this many successes"}),
        ("--max-concurrent", {"type": int, "default": 50, "help": "transfers in flight at once"}),
        ("--retries", {"type": int, "default": 2, "help": "further attempts per device after a failure"}),
        ("--device-timeout", {"type": float, "default": 600.0, "help": "seconds from offer to installed"}),
        ("--retry-delay", {"type": float, "default": 5.0, "help": "seconds before a device is offered again"}),
        ("--success-threshold", {"type": float, "default": 1.0, "help": "fraction confirmed to open the next stage"}),
        ("--error-threshold", {"type": float, "default": 0.1, "help": "fraction failed that fires --on-error"}),
        ("--on-error", {"choices": ["pause", "abort", "rollback"], "default": "pause"}),
        ("--preview", {"action": "store_true", "help": "only count the devices it would update; start nothing"}),
    )  # fmt: skip
    cmd(rollout, "list", list_rollouts, "a product's rollouts, newest first", pid)
    cmd(rollout, "show", show, "one rollout with per-stage counts", pid, rid,
        ("--devices", {"action": "store_true", "help": "also every device's state"}))  # fmt: skip
    for action, text in (("pause", "no new offers; transfers in flight finish"), ("resume", "run a paused rollout"),
                         ("abort", "stop for good; devices not updated yet are skipped")):  # fmt: skip
        p = cmd(rollout, action, act, text, pid, rid)
        p.set_defaults(action=action)
