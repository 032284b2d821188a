"""The `fleetgate` command: run the server and manage the device registry."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from . import cli_operator as ops
from .app import Server, describe_bind_error, run_forever
from .cli_client import ApiClient, CliError, default_api, resolve_token
from .cli_operator import Command
from .config import DEFAULT_API_PORT, DEFAULT_DEVICE_PORT, ServerConfig
from .logs import setup_logging
from .model import Policy, Role

POLICIES = [p.value for p in Policy]
ROLES = [r.value for r in Role]

DEFAULT_DATA_DIR = os.environ.get("FLEETGATE_DATA", "./fleetgate-data")


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(DEFAULT_DATA_DIR),
        help=f"data directory (default: $FLEETGATE_DATA or {DEFAULT_DATA_DIR})",
    )


def _api_args(p: argparse.ArgumentParser) -> None:
    _data_dir_arg(p)
    p.add_argument(
        "--api", default=default_api(), help="API base URL (default $FLEETGATE_API or http://127.0.0.1:8080)"
    )
    p.add_argument("--token", help="bearer token (default $FLEETGATE_TOKEN or DATA_DIR/admin.token)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _cmd(sub: Any, name: str, fn: Command, help_text: str, *args: tuple[str, dict[str, Any]]) -> None:
    p = sub.add_parser(name, help=help_text)
    for flag, options in args:
        p.add_argument(flag, **options)
    _api_args(p)
    p.set_defaults(run=fn)


def _password_args() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("--password", {"help": "the password (visible in your shell history; prefer --password-stdin)"}),
        ("--password-stdin", {"action": "store_true", "help": "read the password from standard input"}),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetgate", description="Fleetgate device cloud")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the device cloud")
    _data_dir_arg(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--device-port", type=int, default=DEFAULT_DEVICE_PORT, help="device port (default 5683)")
    serve.add_argument("--api-port", type=int, default=DEFAULT_API_PORT, help="HTTP API port (default 8080)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    demo = sub.add_parser("demo", help="play the admission rules out with a small simulated fleet")
    demo.set_defaults(run=None)

    pid = ("product", {"help": "product ID or slug"})
    did = ("device_id", {"help": "24 hex characters"})
    move = ("--move", {"action": "store_true", "help": "move it even if it belongs to another product"})

    product = sub.add_parser("product", help="products and their devices").add_subparsers(required=True)
    _cmd(
        product, "create", ops.product_create, "create a product",
        ("name", {}), ("--id", {"type": int, "help": "numeric product ID (default: next free)"}),
        ("--slug", {}), ("--policy", {"choices": POLICIES, "default": "quarantine"}),
    )  # fmt: skip
    _cmd(product, "list", ops.product_list, "list products")
    _cmd(product, "show", ops.product_show, "show a product", pid)
    _cmd(
        product,
        "policy",
        ops.product_policy,
        "set the policy for unrecognised devices",
        pid,
        ("policy", {"choices": POLICIES}),
    )
    _cmd(product, "add-device", ops.product_add_device, "pre-add a device (or approve it)", pid, did, move)
    _cmd(product, "approve", ops.product_approve, "approve a quarantined or denied device", pid, did, move)
    _cmd(product, "deny", ops.product_deny, "put a device on the Denied list", pid, did)
    _cmd(product, "remove", ops.product_remove, "remove a device from the product", pid, did)
    _cmd(
        product,
        "import",
        ops.product_import,
        "add many device IDs (CSV or one per line)",
        pid,
        ("file", {"type": Path}),
    )
    _cmd(
        product, "devices", ops.product_devices, "list a product's devices", pid,
        ("--status", {"choices": ["approved", "quarantined", "denied"]}),
        ("--page", {"type": int, "default": 1}), ("--per-page", {"type": int, "default": 25}),
    )  # fmt: skip

    device = sub.add_parser("device", help="device keys and devices").add_subparsers(required=True)
    _cmd(
        device,
        "import",
        ops.device_import,
        "register device keys from CSV (device_id,public_key)",
        ("file", {"type": Path}),
    )
    _cmd(device, "add", ops.device_add, "register one device key", did, ("public_key", {"help": "64 hex characters"}))
    _cmd(device, "list", ops.device_list, "list registered devices")
    _cmd(device, "show", ops.device_show, "show a device", did, ("--product", {"help": "product ID or slug"}))
    _cmd(
        device, "owner", ops.device_owner, "assign or clear a device's owner", pid, did,
        ("--user", {}), ("--customer", {}), ("--clear", {"action": "store_true"}),
    )  # fmt: skip

    team = sub.add_parser("team", help="a product's team").add_subparsers(required=True)
    _cmd(team, "list", ops.team_list, "list team members", pid)
    _cmd(
        team,
        "add",
        ops.team_add,
        "add or change a team member",
        pid,
        ("username", {}),
        ("--role", {"choices": ROLES, "required": True}),
    )
    _cmd(team, "remove", ops.team_remove, "remove a team member", pid, ("username", {}))

    user = sub.add_parser("user", help="users").add_subparsers(required=True)
    _cmd(
        user,
        "create",
        ops.user_create,
        "create a user (admin only)",
        ("username", {}),
        *_password_args(),
        ("--admin", {"action": "store_true"}),
    )

    customer = sub.add_parser("customer", help="a product's customers").add_subparsers(required=True)
    _cmd(customer, "create", ops.customer_create, "create a customer", pid, ("username", {}), *_password_args())
    _cmd(customer, "list", ops.customer_list, "list customers", pid)

    _cmd(
        sub, "audit", ops.audit, "a product's audit trail", pid,
        ("--after", {"type": int, "default": 0}), ("--limit", {"type": int, "default": 100}),
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo()
        api = ApiClient(args.api, resolve_token(args.token, args.data_dir))
        try:
            code: int = args.run(api, args)
            return code
        finally:
            api.close()
    except CliError as exc:
        print(f"fleetgate: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    config = ServerConfig(data_dir=args.data_dir, host=args.host, device_port=args.device_port, api_port=args.api_port)

    def ready(server: Server) -> None:
        print(f"fleetgate: data directory {config.data_dir.resolve()}", flush=True)
        print(f"fleetgate: server public key {server.ctx.server_key.public.hex()} (in {config.pub_path})", flush=True)
        if server.admin_token_created is not None:
            print(f"fleetgate: first run: admin token written to {server.admin_token_created} (mode 0600)", flush=True)
        print(f"fleetgate: API at http://{config.host}:{server.api_port}", flush=True)
        print(f"fleetgate: devices connect to {config.host}:{server.device_port}; Ctrl-C stops", flush=True)

    try:
        trio.run(run_forever, config, ready)
    except OSError as exc:
        ports = f"device port {config.device_port} or API port {config.api_port}"
        raise CliError(f"cannot listen on {config.host} ({ports}): {describe_bind_error(exc)}") from None
    print("fleetgate: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
