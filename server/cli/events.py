"""`fleetgate events tail`: follow a product's (or one device's) event stream from the API;
`fleetgate events publish`: publish an event as the token's user (Particle's `particle publish`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from typing import Any

from .client import ApiClient


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


def publish(api: ApiClient, args: argparse.Namespace) -> int:
    """To a product's stream (it triggers the product's webhooks, as a member device's event
    does), or without --product to the user's own stream (no webhooks: they are per product)."""
    body = {"name": args.name, "data": args.data, "private": not args.public, "ttl": args.ttl}
    path = f"/v1/products/{args.product}/events" if args.product else "/v1/devices/events"
    answer = api.post(path, json=body)
    if args.json:
        print(json.dumps(answer))
    else:
        where = f"product {args.product}'s stream" if args.product else "your own stream"
        print(f"published {args.name} to {where}")
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
    cmd(
        events, "publish", publish, "publish an event as your user (to a product's stream with --product)",
        ("name", {"help": "event name (1..64 bytes)"}),
        ("data", {"nargs": "?", "default": "", "help": "event data (up to 1024 bytes)"}),
        ("--product", {"help": "product ID or slug: publish to its stream, triggering its webhooks"}),
        ("--public", {"action": "store_true", "help": "mark the event public (default private)"}),
        ("--ttl", {"type": int, "default": 60, "help": "seconds the event is relevant (default 60)"}),
    )  # fmt: skip
