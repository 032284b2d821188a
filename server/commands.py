"""The `fleetgate` commands that run the server's runtime in this process: serve, admin-token, backup and demo.

The rest of `fleetgate` (server/cli/) is an HTTP client that must not import the runtime; the executable
(server/cli/__main__.py) hands these handlers to server.cli.main. Each imports what it runs when it runs,
so that `fleetgate product list` never pays for FastAPI, Hypercorn or the store.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
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
    from .store.database import DatabaseUnavailable
    from .store.open import open_store
    from .store.secrets_key import SecretsKey, SecretsKeyError

    key, key_file = _deployment_secrets_key(None)
    try:
        config = ServerConfig(
            data_dir=args.data_dir, secrets_key=key, secrets_key_file=key_file, database_url=_database_url(args)
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if config.database_url is None and not config.db_path.is_file():
        raise CliError(f"{config.db_path} does not exist: is {args.data_dir} a server's data directory?")
    if not config.data_dir.is_dir():  # on PostgreSQL too: the token file and the secrets key are there
        raise CliError(f"{config.data_dir} does not exist: is it a server's data directory?")
    try:
        store = open_store(
            config.database_url, config.db_path, SecretsKey.chosen(key, key_file, config.secrets_key_path)
        )
    except (SecretsKeyError, DatabaseUnavailable) as exc:
        raise CliError(str(exc)) from None
    try:
        username, path = reissue_admin_token(store, config.admin_token_path)
    except Conflict as exc:
        raise CliError(exc.message) from None
    finally:
        store.close()
    print(f"fleetgate: a new token for admin {username!r} is in {path} (mode 0600); the old ones still work")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """An online copy of the database (safe while the server runs); the keys are not in it."""
    from .config import ServerConfig
    from .store.sqlite.backup import BackupFailed, backup_database

    if _database_url(args) is not None:
        raise CliError("fleetgate backup copies a SQLite database: back up PostgreSQL with pg_dump (docs/CLUSTER.md)")
    config = ServerConfig(data_dir=args.data_dir)
    if not config.db_path.is_file():
        raise CliError(f"{config.db_path} does not exist: is {args.data_dir} a server's data directory?")
    try:
        done = backup_database(config.db_path, args.path)
    except BackupFailed as exc:
        raise CliError(str(exc)) from None
    print(
        f"fleetgate: backed up {config.db_path} to {done.path} (mode 0600, {done.size} bytes,"
        f" events up to #{done.last_event_id}, {done.webhooks} webhook{'' if done.webhooks == 1 else 's'})"
    )
    print(
        f"fleetgate: the backup holds no keys: keep {config.secrets_key_path.name} (it opens the webhook secrets"
        f" sealed in it) and {config.key_path.name} (devices pin it) safe and apart from it; a restore needs both"
    )
    return 0


def _deployment_secrets_key(key_file: Path | None) -> tuple[bytes | None, Path | None]:
    """The secrets key a deployment gives (--secrets-key-file, else the environment), if any."""
    from .store.secrets_key import SecretsKeyError, from_environment

    try:
        return from_environment(os.environ, key_file)
    except SecretsKeyError as exc:
        raise CliError(str(exc)) from None


def _database_url(args: argparse.Namespace) -> str | None:
    """--database, else FLEETGATE_DATABASE_URL, else None (SQLite in the data directory)."""
    return str(args.database or os.environ.get("FLEETGATE_DATABASE_URL") or "") or None


def _delays(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--webhook-retry-delays takes seconds separated by commas, not {text!r}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import CannotServe, serve_until_stopped
    from .config import ServerConfig
    from .logs import setup_logging
    from .store.database import describe_database

    setup_logging(args.log_level, args.log_format)
    key, key_file = _deployment_secrets_key(args.secrets_key_file)
    try:
        config = ServerConfig(
            data_dir=args.data_dir, host=args.host, device_port=args.device_port, api_port=args.api_port,
            max_firmware_size=args.max_firmware_size, publish_rate=args.publish_rate,
            publish_burst=args.publish_burst, webhook_allow_private=args.webhook_allow_private,
            webhook_retry_delays=_delays(args.webhook_retry_delays), webhook_retry_for=args.webhook_retry_for,
            max_handshakes=args.max_handshakes,
            secrets_key=key, secrets_key_file=key_file,
            max_handshakes_per_address=args.max_handshakes_per_address,
            first_message_timeout=args.first_message_timeout,
            database_url=_database_url(args),
            node_id=args.node_id, server_key_file=args.server_key,
            database_lost_after=args.database_lost_after,
        )  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from None

    def ready(server: Server) -> None:
        print(f"fleetgate: data directory {config.data_dir.resolve()}", flush=True)
        if config.database_url is not None:
            print(f"fleetgate: store: {describe_database(config.database_url)}", flush=True)
            print(f"fleetgate: cluster node {server.ctx.node_id}", flush=True)
        key_file = config.server_key_file or config.pub_path
        print(f"fleetgate: server public key {server.ctx.server_key.public.hex()} (in {key_file})", flush=True)
        if server.admin_token_created is not None:
            print(f"fleetgate: first run: admin token written to {server.admin_token_created} (mode 0600)", flush=True)
        if server.admin_password is not None:
            print(
                f"fleetgate: first run: log in to the console as admin, password {server.admin_password}"
                " (shown this once; stored hashed)",
                flush=True,
            )
        print(f"fleetgate: API at http://{config.host}:{server.api_port}", flush=True)
        print(f"fleetgate: console at http://{config.host}:{server.api_port}/console/", flush=True)
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


LOCAL_COMMANDS: dict[str, LocalCommand] = {
    "serve": cmd_serve,
    "admin-token": cmd_admin_token,
    "backup": cmd_backup,
    "demo": cmd_demo,
}
