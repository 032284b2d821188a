"""The `fleetgate` command: run the server and manage the device registry."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import (
    DEFAULT_API_PORT,
    DEFAULT_DATABASE_LOST_AFTER,
    DEFAULT_DEVICE_PORT,
    DEFAULT_FIRST_MESSAGE_TIMEOUT,
    DEFAULT_MAX_HANDSHAKES,
    DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
)
from ..logs import LOG_FORMATS
from ..rules.model import Policy, Role
from . import events as cli_events
from . import firmware as fw
from . import login as cli_login
from . import operator as ops
from . import rollout as cli_rollout
from . import webhook as cli_webhook
from .client import ApiClient, CliError
from .operator import Command
from .profile import resolve_credentials

# serve, admin-token, backup and demo run the server's runtime in this process. Their handlers are handed in by
# the executable (server/cli/__main__.py, from server/commands.py), so that this package stays an HTTP
# client that imports no runtime (the import contract in pyproject.toml) and starts in a fraction of the time.
LocalCommand = Callable[[argparse.Namespace], int]
LOCAL_COMMANDS = ("serve", "admin-token", "backup", "demo")

POLICIES = [p.value for p in Policy]
ROLES = [r.value for r in Role]

DEFAULT_DATA_DIR = os.environ.get("FLEETGATE_DATA", "./fleetgate-data")


def _version() -> str:
    try:
        return importlib.metadata.version("fleetgate")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _database_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database", metavar="URL",
        help="a PostgreSQL database to use instead of SQLite in the data directory, e.g. postgresql://user@host/db "
        "(default: $FLEETGATE_DATABASE_URL, else SQLite)",
    )  # fmt: skip


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(DEFAULT_DATA_DIR),
        help=f"data directory (default: $FLEETGATE_DATA or {DEFAULT_DATA_DIR})",
    )


def _api_args(p: argparse.ArgumentParser) -> None:
    _data_dir_arg(p)
    p.add_argument("--api", help="API base URL (default $FLEETGATE_API, else your login's, else http://127.0.0.1:8080)")
    p.add_argument(
        "--token",
        help="bearer token (default $FLEETGATE_TOKEN, else your login's for that API, else DATA_DIR/admin.token)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def _cmd(
    sub: Any, name: str, fn: Command, help_text: str, *args: tuple[str, dict[str, Any]]
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    for flag, options in args:
        p.add_argument(flag, **options)
    _api_args(p)
    p.set_defaults(run=fn)
    return p


def _password_args() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("--password", {"help": "the password (visible in your shell history; prefer --password-stdin)"}),
        ("--password-stdin", {"action": "store_true", "help": "read the password from standard input"}),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetgate", description="Fleetgate device cloud")
    parser.add_argument("--version", action="version", version=f"fleetgate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the device cloud")
    _data_dir_arg(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--device-port", type=int, default=DEFAULT_DEVICE_PORT, help="device port (default 5683)")
    serve.add_argument("--api-port", type=int, default=DEFAULT_API_PORT, help="HTTP API port (default 8080)")
    serve.add_argument(
        "--max-firmware-size", type=int, default=16 * 1024 * 1024, metavar="BYTES",
        help="largest firmware binary an upload may carry (default and most: 16 MiB)",
    )  # fmt: skip
    serve.add_argument(
        "--publish-rate", type=float, default=1.0, metavar="PER_S",
        help="events a device may publish per second, sustained (default 1, as Particle)",
    )  # fmt: skip
    serve.add_argument(
        "--publish-burst", type=int, default=4, metavar="N", help="events a device may publish at once (default 4)"
    )
    serve.add_argument(
        "--webhook-allow-private", action="store_true",
        help="let webhooks reach private and loopback addresses (refused by default)",
    )  # fmt: skip
    serve.add_argument(
        "--webhook-retry-delays", default="30,60,120,300", metavar="S,S",
        help="seconds before each retry of a failed webhook request, the last repeating "
        "(default 30,60,120,300; '' for none)",
    )  # fmt: skip
    serve.add_argument(
        "--webhook-retry-for", type=float, default=24 * 3600.0, metavar="S",
        help="seconds a webhook delivery is retried before it is marked failed (default 86400: a day)",
    )  # fmt: skip
    serve.add_argument(
        "--max-handshakes", type=int, default=DEFAULT_MAX_HANDSHAKES, metavar="N",
        help=f"device handshakes in progress at most; in a storm the rest wait in the listen queue "
        f"(default {DEFAULT_MAX_HANDSHAKES})",
    )  # fmt: skip
    serve.add_argument(
        "--max-handshakes-per-address", type=int, default=DEFAULT_MAX_HANDSHAKES_PER_ADDRESS, metavar="N",
        help=f"of those, at most N from one source address (an IPv6 /64); more wait their turn. Raise it "
        f"for many devices behind one carrier NAT address (default {DEFAULT_MAX_HANDSHAKES_PER_ADDRESS})",
    )  # fmt: skip
    serve.add_argument(
        "--first-message-timeout", type=float, default=DEFAULT_FIRST_MESSAGE_TIMEOUT, metavar="S",
        help=f"seconds a new connection has to deliver its whole HELLO before it is closed unanswered "
        f"(default {DEFAULT_FIRST_MESSAGE_TIMEOUT:g})",
    )  # fmt: skip
    serve.add_argument(
        "--secrets-key-file", type=Path, metavar="PATH",
        help="the key that seals webhook secrets in the database (default: $FLEETGATE_SECRETS_KEY_FILE, else "
        "$FLEETGATE_SECRETS_KEY, else DATA_DIR/secrets.key, made on first start)",
    )  # fmt: skip
    _database_arg(serve)
    serve.add_argument(
        "--node-id", metavar="ID",
        help="with --database: this node's name in the cluster (default: one made on first start, kept in "
        "DATA_DIR/node.id)",
    )  # fmt: skip
    serve.add_argument(
        "--database-lost-after", type=float, default=DEFAULT_DATABASE_LOST_AFTER, metavar="S",
        help="with --database: seconds a node that cannot reach the database keeps its devices before it "
        f"closes their sessions so they move to other nodes (default {DEFAULT_DATABASE_LOST_AFTER:g})",
    )  # fmt: skip
    serve.add_argument(
        "--server-key", type=Path, metavar="FILE",
        help="the server key every node of a cluster presents (devices pin one key): the same file on each node, "
        "never made here (default: DATA_DIR/server.key, made on first start)",
    )  # fmt: skip
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--log-format", default="json", choices=LOG_FORMATS, help="stderr log: JSON lines (default) or readable text"
    )

    recover = sub.add_parser(
        "admin-token", help="write a new admin token to DATA_DIR/admin.token (needs the data directory, not the API)"
    )
    _data_dir_arg(recover)
    _database_arg(recover)

    backup = sub.add_parser(
        "backup", help="copy the database to a new file, also while the server runs (the keys are not in it)"
    )
    backup.add_argument("path", type=Path, metavar="PATH", help="the new file (an existing one is never replaced)")
    _data_dir_arg(backup)
    _database_arg(backup)

    cli_login.add_commands(sub, _data_dir_arg)

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
        "show, or set, the policy for unrecognised devices",
        pid,
        ("policy", {"choices": POLICIES, "nargs": "?", "help": "the new policy (none: show the current one)"}),
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
        ("--firmware-version", {"type": int, "help": "only devices running this version"}),
        ("--online", {"choices": ["yes", "no"], "help": "only online (yes) or offline (no) devices"}),
        ("--sort", {"choices": ["deviceId", "deviceName", "firmwareVersion", "lastConnection"]}),
        ("--desc", {"action": "store_true", "help": "with --sort: descending"}),
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
    _cmd(
        device, "groups", fw.device_groups, "set a device's groups (none: leave them all)", pid, did,
        ("groups", {"nargs": "*", "metavar": "GROUP"}),
    )  # fmt: skip
    _cmd(
        device, "lock", fw.device_lock, "lock a device to a firmware version, or --unlock", pid, did,
        ("version", {"type": int, "nargs": "?"}), ("--unlock", {"action": "store_true"}),
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

    _firmware_commands(sub, pid)
    cli_rollout.add_commands(sub, _cmd, pid)
    cli_events.add_commands(sub, _cmd, pid)
    cli_webhook.add_commands(sub, _cmd, pid)

    _cmd(
        sub, "audit", ops.audit, "a product's audit trail", pid,
        ("--after", {"type": int, "default": 0}), ("--limit", {"type": int, "default": 100}),
    )  # fmt: skip
    return parser


def _offline(sub: Any, name: str, fn: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
    """A command that needs no server (and no token)."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(offline=fn)
    return p


def _firmware_commands(sub: Any, pid: tuple[str, dict[str, Any]]) -> None:
    firmware = sub.add_parser("firmware", help="product firmware: sign offline, upload, release").add_subparsers(
        required=True
    )
    keygen = _offline(firmware, "keygen", fw.keygen, "make an Ed25519 signing key (offline)")
    keygen.add_argument("--out", type=Path, required=True, help="private key file (PEM, mode 0600); public: OUT.pub")
    sign = _offline(firmware, "sign", fw.sign_file, "sign a binary: a detached signature in hex (offline)")
    sign.add_argument("file", type=Path)
    sign.add_argument("--key", type=Path, required=True, help="the private key file from keygen")
    sign.add_argument("--out", type=Path, help="signature file (default FILE.sig)")
    verify = _offline(firmware, "verify", fw.verify_file, "check a binary's signature (offline)")
    verify.add_argument("file", type=Path)
    verify.add_argument("--public-key", required=True, help="64 hex characters, or the KEYFILE.pub file")
    verify.add_argument("--signature", type=Path, help="signature file (default FILE.sig)")
    inspect = _offline(firmware, "inspect", fw.inspect_file, "check a binary's header and show it (offline)")
    inspect.add_argument("file", type=Path)

    version = ("version", {"type": int, "help": "firmware version"})
    _cmd(
        firmware, "upload", fw.upload, "upload a binary", pid, ("file", {"type": Path}),
        ("--version", {"type": int, "help": "firmware version (default: the binary's header)"}),
        ("--title", {"help": "default: the file name"}), ("--description", {"default": ""}),
        ("--signature", {"type": Path, "help": "detached signature file from `fleetgate firmware sign`"}),
    )  # fmt: skip
    _cmd(firmware, "list", fw.list_firmware, "list a product's firmware", pid)
    _cmd(firmware, "show", fw.show, "show one version", pid, version)
    _cmd(
        firmware, "release", fw.release, "release a version to exactly the targets given (at least one)",
        pid, version, ("--default", {"action": "store_true", "help": "make it the product default"}),
        ("--group", {"action": "extend", "nargs": "+", "metavar": "GROUP", "help": "release to these groups"}),
        ("--intelligent", {"action": "store_true", "help": "an intelligent release (Particle's flag)"}),
        ("--preview", {"action": "store_true", "help": "only list the devices it would update; release nothing"}),
    )  # fmt: skip
    _cmd(
        firmware, "unrelease", fw.unrelease, "withdraw a version's release from the targets given (none: all)",
        pid, version, ("--default", {"action": "store_true", "help": "no longer the product default"}),
        ("--group", {"action": "extend", "nargs": "+", "metavar": "GROUP", "help": "withdraw from these groups"}),
    )  # fmt: skip
    _cmd(firmware, "delete", fw.delete, "delete an unreleased version", pid, version)

    group = sub.add_parser("group", help="a product's device groups").add_subparsers(required=True)
    _cmd(group, "create", fw.group_create, "create a group", pid, ("name", {}), ("--description", {"default": ""}))
    _cmd(group, "list", fw.group_list, "list groups", pid)
    _cmd(group, "delete", fw.group_delete, "delete a group (its devices leave it)", pid, ("name", {}))


def main(argv: Sequence[str] | None = None, local: Mapping[str, LocalCommand] | None = None) -> int:
    """Run one command; `local` holds the handlers of LOCAL_COMMANDS (the executable passes them)."""
    try:
        code = _main(argv, local or {})
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return code
    except KeyboardInterrupt:  # Ctrl-C ends `events tail` (or any long call) without a traceback
        return 130
    except BrokenPipeError:  # `fleetgate ... | head`: the reader has all it wants
        _discard_stdout()
        return 141  # as if SIGPIPE had ended us, like other Unix tools


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _main(argv: Sequence[str] | None, local: Mapping[str, LocalCommand]) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "offline", None) is not None:
            code: int = args.offline(args)
            return code
        if args.command in LOCAL_COMMANDS:
            handler = local.get(args.command)
            if handler is None:
                raise CliError(f"{args.command} runs the server: use the fleetgate command (python -m server.cli)")
            return handler(args)
        api = ApiClient(*resolve_credentials(args.api, args.token, args.data_dir))
        try:
            code = args.run(api, args)
            return code
        finally:
            api.close()
    except CliError as exc:
        print(f"fleetgate: {exc}", file=sys.stderr)
        return 2
