"""The `fleetsim` command: device identities and simulated fleets."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path

import trio

from protocol import limits
from protocol.codes import Status, SubscribeResult
from protocol.errors import RemoteProtocolError
from protocol.messages import EventMessage, parse_device_id, parse_public_key

from . import drill_cli, firmware
from .bench import cli as bench_cli
from .chaos import cli as chaos_cli
from .device import DeviceClosed, DeviceRefused, DeviceSettings, connect_device
from .fleet import DeviceOutcome, FleetPlan, run_fleet, summarize, updates_installed
from .identity import DeviceIdentity, load_identities, write_identities
from .progress import Progress
from .quiet_exit import INTERRUPTED, caused_by, exit_code_for


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetsim", description="Simulated Fleetgate devices")
    sub = parser.add_subparsers(dest="command", required=True)

    keygen = sub.add_parser("keygen", help="generate device identities")
    keygen.add_argument("--count", type=int, required=True, help="number of devices")
    keygen.add_argument("--out", type=Path, required=True, help="directory for identities.csv and devices.csv")

    run = sub.add_parser("run", help="connect simulated devices to a server")
    run.add_argument("--server", required=True, help="HOST:PORT of the device listener")
    run.add_argument("--server-key", required=True, help="server public key: a file (server.pub) or 64 hex characters")
    run.add_argument("--identities", type=Path, required=True, help="directory written by `fleetsim keygen`")
    run.add_argument("--count", type=int, help="use the first N identities (default: all)")
    run.add_argument(
        "--product", default="none", help="product ID the firmware reports, or 'none' (development firmware)"
    )
    run.add_argument("--firmware-version", type=int, default=1)
    run.add_argument("--platform", type=int, default=6, help="platform ID (default 6)")
    run.add_argument("--publish", type=int, default=0, metavar="K", help="events each device publishes")
    run.add_argument("--hold", type=float, default=0.0, metavar="SECONDS", help="stay connected this long")
    run.add_argument(
        "--wait-status",
        choices=[s.name.lower() for s in Status],
        help="with --hold: leave as soon as the server grants this status (e.g. ok after an approval)",
    )
    run.add_argument(
        "--behaviour",
        choices=["normal", "spoof"],
        default="normal",
        help="spoof: present each registered device ID with a key of its own (must be refused)",
    )
    run.add_argument("--concurrency", type=int, default=512, help="handshakes in flight at once")
    run.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="per-device limit for connecting (to READY) and publishing; --hold is not counted",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object with per-device outcomes")

    listen = sub.add_parser("listen", help="connect one device, subscribe to event prefixes and print the events")
    listen.add_argument("--server", required=True, help="HOST:PORT of the device listener")
    listen.add_argument("--server-key", required=True, help="server public key: a file (server.pub) or 64 hex chars")
    listen.add_argument("--identities", type=Path, required=True, help="directory written by `fleetsim keygen`")
    listen.add_argument("--device", help="device ID of the identity to use (default: the first one)")
    listen.add_argument("--product", required=True, help="product ID the firmware reports")
    listen.add_argument("--firmware-version", type=int, default=1)
    listen.add_argument(
        "--subscribe",
        action="append",
        required=True,
        metavar="PREFIX",
        help="event name prefix; repeat for more (at most 12; '' for every event)",
    )
    listen.add_argument("--events", type=int, metavar="N", help="leave after N events (default: no limit)")
    listen.add_argument("--hold", type=float, metavar="SECONDS", help="leave after this long (default: until Ctrl-C)")
    listen.add_argument("--json", action="store_true", help="one JSON object per event, then one for the summary")

    binaries = sub.add_parser("firmware", help="synthetic firmware binaries").add_subparsers(
        dest="firmware_command", required=True
    )
    build = binaries.add_parser("build", help="build a binary with a valid header (docs/FIRMWARE.md)")
    build.add_argument("--product", type=int, required=True, help="product ID in the header")
    build.add_argument("--version", type=int, required=True, help="firmware version in the header (1..65535)")
    build.add_argument("--size", type=int, required=True, metavar="BYTES", help="total size, header included")
    build.add_argument("--platform", type=int, default=6, help="platform ID in the header (default 6)")
    build.add_argument("--seed", type=int, default=0, help="another seed gives other body bytes (default 0)")
    build.add_argument("--out", type=Path, required=True, help="file to write")
    build.add_argument("--json", action="store_true", help="print size and SHA-256 as JSON")

    drill_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    chaos_cli.add_parser(sub)
    return parser


class CliError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BaseException as exc:
        code = exit_code_for(exc)  # Ctrl-C, or output piped into `head`: no traceback
        if code is None:
            raise
        return code


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "keygen":
            return cmd_keygen(args)
        if args.command == "firmware":
            return cmd_firmware_build(args)
        if args.command == "drill":
            return drill_cli.cmd_drill(args)
        if args.command == "listen":
            return cmd_listen(args)
        if args.command == "bench":
            return bench_cli.cmd_bench(args)
        if args.command == "chaos":
            return chaos_cli.cmd_chaos(args)
        return cmd_run(args)
    except (CliError, drill_cli.DrillFailedToRun) as exc:
        print(f"fleetsim: {exc}", file=sys.stderr)
        return 2
    except drill_cli.DrillInterrupted as exc:
        print(f"fleetsim: {exc}", file=sys.stderr)
        return INTERRUPTED


def cmd_keygen(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise CliError("--count must be at least 1")
    identities = [DeviceIdentity.generate() for _ in range(args.count)]
    write_identities(args.out, identities)
    print(f"wrote {args.count} identities: {args.out / 'identities.csv'} (private keys, mode 0600)")
    print(f"import the public keys with: fleetgate device import {args.out / 'devices.csv'}")
    return 0


MAX_IMAGE = 2**32 - 1  # the header's image_length is a uint32; the server takes at most 16 MiB


def cmd_firmware_build(args: argparse.Namespace) -> int:
    if not 1 <= args.product <= limits.MAX_PRODUCT_ID:
        raise CliError(f"--product must be 1..{limits.MAX_PRODUCT_ID}")
    if not 1 <= args.version <= limits.MAX_FIRMWARE_VERSION:
        raise CliError(f"--version must be 1..{limits.MAX_FIRMWARE_VERSION}")
    if not 0 <= args.platform <= limits.MAX_PLATFORM_ID:
        raise CliError(f"--platform must be 0..{limits.MAX_PLATFORM_ID}")
    if not firmware.HEADER_SIZE <= args.size <= MAX_IMAGE:
        raise CliError(f"--size must be {firmware.HEADER_SIZE}..{MAX_IMAGE} bytes (the header alone is 32)")
    data = firmware.build(args.product, args.version, args.size, platform_id=args.platform, seed=args.seed)
    try:
        args.out.write_bytes(data)
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if args.json:
        print(json.dumps({"file": str(args.out), "size": len(data), "sha256": digest, "product_id": args.product,
                          "version": args.version, "platform_id": args.platform}))  # fmt: skip
    else:
        print(f"wrote {args.out}: {len(data)} bytes, product {args.product}, version {args.version}, sha256 {digest}")
    return 0


def parse_server(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--server must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_server_key(text: str) -> bytes:
    path = Path(text)
    source = path.read_text().strip() if path.is_file() else text
    try:
        return parse_public_key(source)
    except ValueError as exc:
        raise CliError(f"--server-key: {exc} (pass the server.pub file or its hex)") from None


def parse_product(text: str) -> int | None:
    if text.lower() == "none":
        return None
    if not text.isdigit() or not 1 <= int(text) <= limits.MAX_PRODUCT_ID:
        raise CliError(f"--product must be a product ID (1..{limits.MAX_PRODUCT_ID}) or 'none', got {text!r}")
    return int(text)


def cmd_run(args: argparse.Namespace) -> int:
    host, port = parse_server(args.server)
    try:
        identities = load_identities(args.identities)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot load identities: {exc}") from None
    if args.count is not None:
        if args.count > len(identities):
            raise CliError(f"--count {args.count} but only {len(identities)} identities in {args.identities}")
        identities = identities[: args.count]
    if not 0 <= args.firmware_version <= limits.MAX_FIRMWARE_VERSION:
        raise CliError(f"--firmware-version must be 0..{limits.MAX_FIRMWARE_VERSION}")
    plan = FleetPlan(
        host=host,
        port=port,
        server_public_key=parse_server_key(args.server_key),
        settings=DeviceSettings(
            product_id=parse_product(args.product),
            firmware_version=args.firmware_version,
            platform_id=args.platform,
        ),
        publish=args.publish,
        hold=args.hold,
        connect_concurrency=args.concurrency,
        timeout=args.timeout,
        wait_status=Status[args.wait_status.upper()] if args.wait_status else None,
        behaviour=args.behaviour,
    )
    progress = Progress(len(identities), "devices", enabled=not args.json and sys.stderr.isatty())

    def done(outcome: DeviceOutcome) -> None:
        progress.advance()

    async def go() -> tuple[list[DeviceOutcome], float]:
        start = trio.current_time()
        outcomes = await run_fleet(plan, identities, done)
        return outcomes, trio.current_time() - start

    try:
        outcomes, elapsed = trio.run(go)
    finally:
        progress.close()  # on Ctrl-C too: the shell's prompt starts on a line of its own
    summary = summarize(outcomes, elapsed)
    if args.json:
        print(json.dumps({"summary": summary, "devices": [o.as_json() for o in outcomes]}))
    else:
        _print_report(summary, outcomes)
    expected_refusal = args.behaviour == "spoof"
    connected_ok = summary["connected"] == (0 if expected_refusal else len(outcomes))
    failed = not connected_ok or summary["events_acked"] != summary["events_sent"]
    return 1 if failed else 0


def cmd_listen(args: argparse.Namespace) -> int:
    """One device that subscribes and prints what the server sends it. Exit status 1 when a
    prefix is refused or the link ends before the device leaves on its own."""
    host, port = parse_server(args.server)
    server_key = parse_server_key(args.server_key)
    product = parse_product(args.product)
    if product is None:
        raise CliError("--product: development firmware never receives events (the server says not_permitted)")
    for prefix in args.subscribe:
        if len(prefix.encode()) > limits.MAX_SUBSCRIBE_PREFIX:
            raise CliError(f"--subscribe: a prefix is at most {limits.MAX_SUBSCRIBE_PREFIX} bytes of UTF-8")
    if args.events is not None and args.events < 1:
        raise CliError("--events must be at least 1")
    try:
        identities = load_identities(args.identities)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot load identities: {exc}") from None
    if args.device is not None:
        try:
            wanted = parse_device_id(args.device)
        except ValueError as exc:
            raise CliError(f"--device: {exc}") from None
        identities = [i for i in identities if i.device_id == wanted]
    if not identities:
        raise CliError(f"no such identity in {args.identities}")
    identity = identities[0]
    settings = DeviceSettings(product_id=product, firmware_version=args.firmware_version)
    summary: dict[str, object] = {"device_id": identity.device_id_hex}
    counts = {"events": 0, "skipped": 0}  # kept up to date: Ctrl-C may end the run at any point

    def show(event: EventMessage) -> None:
        published = datetime.fromtimestamp(event.published_at_ms / 1000, UTC).isoformat(timespec="milliseconds")
        published = published.replace("+00:00", "Z")
        source = event.source.hex() if event.source is not None else None
        data = event.data.decode("utf-8", errors="backslashreplace")
        if args.json:
            print(json.dumps({"id": event.event_id, "name": event.name, "data": data, "published_at": published,
                              "ttl": event.ttl, "source": source, "to_device": event.to_device,
                              "skipped": event.skipped}), flush=True)  # fmt: skip
            return
        notes = " (to this device)" if event.to_device else ""
        if event.skipped:
            notes += f" ({event.skipped} skipped before it)"
        print(f"[{published}] {event.name} from {source or 'the cloud'}: {data}{notes}", flush=True)

    async def go() -> bool:
        stream = await trio.open_tcp_stream(host, port)
        async with connect_device(stream, identity, server_key, settings) as device:
            status = device.state.status
            summary["status"] = status.name.lower() if status is not None else None
            results = {prefix: await device.subscribe(prefix) for prefix in args.subscribe}
            summary["subscriptions"] = {prefix: result.name.lower() for prefix, result in results.items()}
            if not args.json:
                print(f"{identity.device_id_hex}: {summary['status']}; subscribed: {summary['subscriptions']}")
            with trio.move_on_after(args.hold if args.hold is not None else math.inf):
                async with aclosing(device.events()) as events:
                    async for event in events:
                        show(event)
                        counts["events"] += 1
                        counts["skipped"] = device.events_skipped
                        if counts["events"] == args.events:
                            break
            closed = device.closed
            if closed is not None:
                summary["closed"] = closed.reason.name.lower()
            return closed is None and all(r is SubscribeResult.ACCEPTED for r in results.values())

    interrupted = False
    try:
        ok = trio.run(go)
    except DeviceRefused:
        raise CliError("the server refused the device (not registered, or a wrong key)") from None
    except BrokenPipeError:
        raise  # our stdout closed (`| head`), not the link: main() exits quietly
    except (DeviceClosed, RemoteProtocolError, OSError) as exc:
        raise CliError(f"the link failed: {exc}") from None
    except BaseException as exc:  # Ctrl-C is how a listener without --hold or --events leaves
        if not caused_by(exc, KeyboardInterrupt):
            raise
        ok = interrupted = True
    summary.update(counts)
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        print(f"{counts['events']} events, {counts['skipped']} skipped by the server")
    return INTERRUPTED if interrupted else 0 if ok else 1


def _print_report(summary: dict[str, object], outcomes: list[DeviceOutcome]) -> None:
    print(
        f"{summary['connected']}/{summary['devices']} connected, {summary['refused']} refused, "
        f"{summary['errors']} errors in {summary['elapsed_s']} s"
    )
    print(f"statuses: {summary['statuses']}")
    if summary["status_updates"]:
        print(f"status updates pushed while connected: {summary['status_updates']}; final: {summary['final_statuses']}")
    print(f"events acked: {summary['events_acked']}/{summary['events_sent']}")
    if installed := updates_installed(outcomes):
        print(f"updates installed: {installed}")
    print(f"handshake latency: p50 {summary['handshake_ms_p50']} ms, p99 {summary['handshake_ms_p99']} ms")
    problems = [o for o in outcomes if o.outcome != "connected" or o.error]
    for o in problems[:20]:
        print(f"  {o.device_id}: {o.outcome}{': ' + o.error if o.error else ''}")
    if len(problems) > 20:
        print(f"  ... and {len(problems) - 20} more")


if __name__ == "__main__":
    sys.exit(main())
