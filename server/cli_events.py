"""`fleetgate events tail`: follow a product's (or one device's) event stream from the API."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from typing import Any

from .cli_client import ApiClient


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Server-Sent Events to dicts: {"id", "event", **data} per event; comments are skipped."""
    current: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            continue
        if line == "":
            if "data" in current:
                data = json.loads(current["data"])
                yield {"id": int(current.get("id", "0")), "event": current.get("event", "message"), **data}
            current = {}
            continue
        key, _, value = line.partition(":")
        current[key] = value[1:] if value.startswith(" ") else value


def tail(api: ApiClient, args: argparse.Namespace) -> int:
    base = f"/v1/devices/{args.device}/events" if args.device else f"/v1/products/{args.product}/events"
    path = f"{base}/{args.prefix}" if args.prefix else base
    params = {"after": args.after} if args.after is not None else {}
    for shown, event in enumerate(parse_sse(api.stream_lines(path, params=params)), start=1):
        if args.json:
            print(json.dumps(event), flush=True)
        else:
            print(f"{event['published_at']}  {event['coreid']}  {event['event']}  {event['data']}", flush=True)
        if args.count is not None and shown >= args.count:
            break
    return 0


def add_commands(sub: Any, cmd: Any, pid: tuple[str, dict[str, Any]]) -> None:
    events = sub.add_parser("events", help="event streams").add_subparsers(required=True)
    cmd(
        events, "tail", tail, "follow a product's event stream (Ctrl-C stops)", pid,
        ("--prefix", {"help": "only events whose name starts with this"}),
        ("--device", {"help": "one device's own events instead (its ID)"}),
        ("--after", {"type": int, "help": "first replay stored events after this event ID (0: all)"}),
        ("--count", {"type": int, "help": "stop after this many events"}),
    )  # fmt: skip
