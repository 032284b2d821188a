"""The `fleetgate` command: run the server and manage the device registry."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import trio

from protocol.messages import parse_device_id, parse_public_key

from .app import Server, describe_bind_error, run_forever
from .config import DEFAULT_DEVICE_PORT, ServerConfig
from .logs import now, setup_logging
from .store import DeviceRecord, ImportResult, SQLiteStore

DEFAULT_DATA_DIR = os.environ.get("FLEETGATE_DATA", "./fleetgate-data")


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(DEFAULT_DATA_DIR),
        help=f"data directory (default: $FLEETGATE_DATA or {DEFAULT_DATA_DIR})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetgate", description="Fleetgate device cloud")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the device cloud")
    _data_dir_arg(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--device-port", type=int, default=DEFAULT_DEVICE_PORT, help="device port (default 5683)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    device = sub.add_parser("device", help="device registry").add_subparsers(dest="device_command", required=True)
    imp = device.add_parser("import", help="register device keys from a CSV file (device_id,public_key)")
    imp.add_argument("file", type=Path, help="CSV with columns device_id,public_key (hex); '-' for stdin")
    _data_dir_arg(imp)
    imp.add_argument("--json", action="store_true", help="print the result as JSON")
    add = device.add_parser("add", help="register one device key")
    add.add_argument("device_id", help="24 hex characters")
    add.add_argument("public_key", help="64 hex characters (X25519 public key)")
    _data_dir_arg(add)
    lst = device.add_parser("list", help="list registered devices")
    _data_dir_arg(lst)
    lst.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.device_command == "import":
            return cmd_import(args)
        if args.device_command == "add":
            return cmd_add(args)
        return cmd_list(args)
    except CliError as exc:
        print(f"fleetgate: {exc}", file=sys.stderr)
        return 2


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# ---------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    config = ServerConfig(data_dir=args.data_dir, host=args.host, device_port=args.device_port)

    def ready(server: Server) -> None:
        print(f"fleetgate: data directory {config.data_dir.resolve()}", flush=True)
        print(f"fleetgate: server public key {server.ctx.server_key.public.hex()} (in {config.pub_path})", flush=True)
        print(f"fleetgate: devices connect to {config.host}:{server.device_port}; Ctrl-C stops", flush=True)

    try:
        trio.run(run_forever, config, ready)
    except OSError as exc:
        raise CliError(f"cannot listen on {config.host}:{config.device_port}: {describe_bind_error(exc)}") from None
    print("fleetgate: stopped", flush=True)
    return 0


# ---------------------------------------------------------------------- registry


def _open_store(data_dir: Path) -> SQLiteStore:
    if not data_dir.is_dir():
        raise CliError(
            f"no data directory at {data_dir} (run `fleetgate serve --data-dir {data_dir}` once to create it)"
        )
    return SQLiteStore(data_dir / "fleetgate.db")


def parse_key_csv(text: str) -> Iterator[tuple[int, str, bytes | str]]:
    """Yield (line number, device_id, public key bytes) or (line number, raw text, error)."""
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if lineno == 1 and cells[0].lower() == "device_id":
            continue  # header
        if len(cells) < 2:
            yield lineno, ",".join(cells), "expected two columns: device_id,public_key"
            continue
        try:
            yield lineno, parse_device_id(cells[0]).hex(), parse_public_key(cells[1])
        except ValueError as exc:
            yield lineno, cells[0], str(exc)


def import_keys(store: SQLiteStore, text: str) -> ImportResult:
    rows: list[tuple[str, bytes]] = []
    bad: list[tuple[str, str]] = []
    seen: set[str] = set()
    for lineno, ident, key_or_error in parse_key_csv(text):
        if isinstance(key_or_error, str):
            bad.append((f"line {lineno}: {ident}", key_or_error))
        elif ident in seen:
            bad.append((f"line {lineno}: {ident}", "listed twice in this file"))
        else:
            seen.add(ident)
            rows.append((ident, key_or_error))
    result = store.import_devices(rows, now())
    result.errors[:0] = bad
    return result


def cmd_import(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    store = _open_store(args.data_dir)
    try:
        result = import_keys(store, text)
    finally:
        store.close()
    if args.json:
        print(
            json.dumps(
                {
                    "added": result.added,
                    "unchanged": result.unchanged,
                    "errors": [{"device": d, "error": e} for d, e in result.errors],
                }
            )
        )
    else:
        counts = f"{len(result.unchanged)} already registered, {len(result.errors)} errors"
        print(f"imported {len(result.added)} devices ({counts})")
        for where, error in result.errors:
            print(f"  {where}: {error}", file=sys.stderr)
    return 1 if result.errors else 0


def cmd_add(args: argparse.Namespace) -> int:
    try:
        device_id, key = parse_device_id(args.device_id).hex(), parse_public_key(args.public_key)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    store = _open_store(args.data_dir)
    try:
        result = store.import_devices([(device_id, key)], now())
    finally:
        store.close()
    if result.errors:
        raise CliError(f"{device_id}: {result.errors[0][1]}")
    print(f"{device_id}: {'added' if result.added else 'already registered with this key'}")
    return 0


def device_json(d: DeviceRecord) -> dict[str, object]:
    return {
        "id": d.device_id,
        "public_key": d.public_key.hex() if d.public_key else None,
        "owner": None if d.owner is None else f"{d.owner.kind}:{d.owner.id}",
        "platform_id": d.platform_id,
        "product_id": d.product_id,
        "firmware_version": d.firmware_version,
        "online": d.online,
        "created_at": d.created_at,
        "last_heard": d.last_heard,
        "last_handshake_at": d.last_handshake_at,
    }


def cmd_list(args: argparse.Namespace) -> int:
    store = _open_store(args.data_dir)
    try:
        devices = store.list_devices()
    finally:
        store.close()
    if args.json:
        print(json.dumps([device_json(d) for d in devices]))
        return 0
    print(f"{'DEVICE ID':24}  {'ONLINE':6}  {'FW':>5}  {'PLATFORM':>8}  LAST HEARD")
    for d in devices:
        heard = "-" if d.last_heard is None else _iso(d.last_heard)
        fw = "-" if d.firmware_version is None else str(d.firmware_version)
        platform = "-" if d.platform_id is None else str(d.platform_id)
        print(f"{d.device_id:24}  {'yes' if d.online else 'no':6}  {fw:>5}  {platform:>8}  {heard}")
    print(f"{len(devices)} devices")
    return 0


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    sys.exit(main())
