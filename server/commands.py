"""The `fleetgate` commands that run the server's runtime in this process: serve, admin-token and demo.

The rest of `fleetgate` (server/cli/) is an HTTP client that must not import the runtime; the executable
(server/cli/__main__.py) hands these handlers to server.cli.main. Each imports what it runs when it runs,
so that `fleetgate product list` never pays for FastAPI, Hypercorn or the store.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .cli.client import CliError
from .cli.command import LocalCommand

if TYPE_CHECKING:
    from .app import Server


def cmd_admin_token(args: argparse.Namespace) -> int:
    """Recovery when the admin's token was lost or revoked: holding the data directory is the proof."""
    from .config import ServerConfig
    from .ops.auth import reissue_admin_token
    from .rules.errors import Conflict
    from .store import SQLiteStore

    config = ServerConfig(data_dir=args.data_dir)
    if not config.db_path.is_file():
        raise CliError(f"{config.db_path} does not exist: is {args.data_dir} a server's data directory?")
    store = SQLiteStore(config.db_path)
    try:
        username, path = reissue_admin_token(store, config.admin_token_path)
    except Conflict as exc:
        raise CliError(exc.message) from None
    finally:
        store.close()
    print(f"fleetgate: a new token for admin {username!r} is in {path} (mode 0600); the old ones still work")
    return 0


def _delays(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--webhook-retry-delays takes seconds separated by commas, not {text!r}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import CannotServe, serve_until_stopped
    from .config import ServerConfig
    from .logs import setup_logging

    setup_logging(args.log_level, args.log_format)
    try:
        config = ServerConfig(
            data_dir=args.data_dir, host=args.host, device_port=args.device_port, api_port=args.api_port,
            max_firmware_size=args.max_firmware_size, publish_rate=args.publish_rate,
            publish_burst=args.publish_burst, webhook_allow_private=args.webhook_allow_private,
            webhook_retry_delays=_delays(args.webhook_retry_delays), webhook_retry_for=args.webhook_retry_for,
            max_handshakes=args.max_handshakes,
        )  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from None

    def ready(server: Server) -> None:
        print(f"fleetgate: data directory {config.data_dir.resolve()}", flush=True)
        print(f"fleetgate: server public key {server.ctx.server_key.public.hex()} (in {config.pub_path})", flush=True)
        if server.admin_token_created is not None:
            print(f"fleetgate: first run: admin token written to {server.admin_token_created} (mode 0600)", flush=True)
        print(f"fleetgate: API at http://{config.host}:{server.api_port}", flush=True)
        print(f"fleetgate: devices connect to {config.host}:{server.device_port}; Ctrl-C stops", flush=True)

    try:
        serve_until_stopped(config, ready)
    except CannotServe as exc:
        raise CliError(str(exc)) from None
    print("fleetgate: stopped", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()


LOCAL_COMMANDS: dict[str, LocalCommand] = {"serve": cmd_serve, "admin-token": cmd_admin_token, "demo": cmd_demo}
