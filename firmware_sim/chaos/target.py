"""The server a chaos scenario runs against: one it starts (`fleetgate serve` on a temp data
directory, as firmware_sim/drill_server.py starts the drill's), or one already running (--server)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from protocol.messages import parse_public_key

from ..drill_server import ServerProcess, free_ports


class ScenarioError(Exception):
    """The scenario cannot run (bad arguments, no server): one line on stderr, exit 2."""


@dataclass(slots=True)
class Target:
    host: str
    port: int
    api: str
    server_key: bytes
    admin_token: str
    server: ServerProcess | None  # ours: its log, its process (RSS, kill -9)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="HOST:PORT", help="a running server's device listener (default: start one)")
    parser.add_argument("--api", metavar="URL", help="with --server: its API base URL")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="with --server: its data directory (key, token)")
    add_json_option(parser)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ScenarioError(f"--server must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def external_target(args: argparse.Namespace) -> Target:
    if args.api is None or args.data_dir is None:
        raise ScenarioError("--server needs --api URL and --data-dir DIR (for server.pub and admin.token)")
    host, port = _parse_address(args.server)
    try:
        key = parse_public_key((args.data_dir / "server.pub").read_text())
        token = (args.data_dir / "admin.token").read_text().strip()
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"--data-dir {args.data_dir}: {exc}") from None
    return Target(host, port, args.api.rstrip("/"), key, token, None)


@dataclass(slots=True)
class OwnServer:
    """A server of our own; its data directory and log are deleted at the end (the report carries
    what the log said)."""

    process: ServerProcess
    root: Path

    def target(self) -> Target:
        p = self.process
        key = parse_public_key(p.public_key_path.read_text())
        return Target("127.0.0.1", p.device_port, p.api, key, p.admin_token, p)


@asynccontextmanager
async def own_server(log_level: str = "info", extra_args: tuple[str, ...] = ()) -> AsyncIterator[OwnServer]:
    root = Path(tempfile.mkdtemp(prefix="fleetsim-chaos-"))
    device_port, api_port = free_ports(2)
    process = ServerProcess(root / "data", device_port, api_port, root / "server.log", log_level, extra_args)
    own = OwnServer(process, root)
    try:
        await process.start()
        yield own
    finally:
        await process.stop()
        process.close()
        shutil.rmtree(root, ignore_errors=True)


@asynccontextmanager
async def target_for(
    args: argparse.Namespace, log_level: str = "info"
) -> AsyncIterator[tuple[Target, OwnServer | None]]:
    """The scenario's target: --server's, or a server of our own for the scenario's length."""
    if args.server is not None:
        yield external_target(args), None
        return
    async with own_server(log_level) as own:
        yield own.target(), own
