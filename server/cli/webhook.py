"""`fleetgate webhook`: create, list, show, enable, disable, delete, deliveries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .client import ApiClient, CliError
from .operator import emit, ok

LIST_COLUMNS = ["id", "event", "method", "url", "disabled", "triggered", "pending", "succeeded", "failed", "dropped"]
ATTEMPT_COLUMNS = ["at", "event_id", "attempt", "status", "duration_ms", "error"]
FAILED_COLUMNS = ["updated_at", "event_id", "attempts", "last_status", "error"]


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=" if what != "header" else ":")
        if not sep or not key.strip():
            raise CliError(f"--{what} takes {'NAME: VALUE' if what == 'header' else 'NAME=VALUE'}, not {item!r}")
        out[key.strip()] = value.strip() if what == "header" else value
    return out


def _row(hook: dict[str, Any]) -> dict[str, Any]:
    c = hook["config"]
    return {**hook, **hook["counters"], "event": c["event"], "method": c["requestType"], "url": c["url"],
            "disabled": c["disabled"]}  # fmt: skip


def create(api: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"event": args.event, "url": args.url, "requestType": args.method,
                            "noDefaults": args.no_defaults, "rejectUnauthorized": not args.insecure}  # fmt: skip
    if args.config:
        try:
            body = {**json.loads(Path(args.config).read_text()), **({"event": args.event} if args.event else {})}
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {args.config}: {exc}") from None
        if args.url:
            body["url"] = args.url
    if not body.get("event") or not body.get("url"):
        raise CliError("give an event prefix and a URL (or a --config file with both)")
    for key, items, what in (("headers", args.header, "header"), ("query", args.query, "query"),
                             ("form", args.form, "form")):  # fmt: skip
        if items:
            body[key] = {**body.get(key, {}), **_pairs(items, what)}
    if args.json_template is not None:
        try:
            body["json"] = json.loads(args.json_template)
        except ValueError:
            body["json"] = args.json_template  # a template string: it becomes JSON once rendered
    if args.body is not None:
        body["body"] = args.body
    for key, value in (("responseTopic", args.response_topic), ("errorResponseTopic", args.error_topic)):
        if value is not None:
            body[key] = value
    hook = api.post(f"/v1/products/{args.product}/webhooks", json=body)
    c = hook["config"]
    text = f"webhook {hook['id']} created: {c['requestType']} {c['url']} on events starting {c['event']!r}"
    return ok(args, hook, f"{text}\nsigning secret (shown once): {hook['secret']}")


def list_webhooks(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get(f"/v1/products/{args.product}/webhooks")
    return emit(args, data, LIST_COLUMNS, [_row(h) for h in data["webhooks"]])


def show(api: ApiClient, args: argparse.Namespace) -> int:
    hook = api.get(f"/v1/products/{args.product}/webhooks/{args.webhook}")
    if args.json:
        return ok(args, hook, "")
    print(json.dumps(hook["config"], indent=2))
    return emit(args, None, list(hook["counters"]), [hook["counters"]])


def set_disabled(api: ApiClient, args: argparse.Namespace) -> int:
    path = f"/v1/products/{args.product}/webhooks/{args.webhook}"
    config = {**api.get(path)["config"], "disabled": args.disabled}
    hook = api.put(path, json=config)
    return ok(args, hook, f"webhook {hook['id']} {'disabled' if args.disabled else 'enabled'}")


def delete(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.delete(f"/v1/products/{args.product}/webhooks/{args.webhook}")
    return ok(args, data, f"webhook {args.webhook} deleted")


def deliveries(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get(f"/v1/products/{args.product}/webhooks/{args.webhook}/deliveries")
    if args.json:
        return ok(args, data, "")
    emit(args, None, list(data["counters"]), [data["counters"]])
    for title in ("successes", "errors"):
        print(f"\nlatest {title}:")
        emit(args, None, ATTEMPT_COLUMNS, data[title])
    print("\nlatest failed deliveries (given up):")
    emit(args, None, FAILED_COLUMNS, data.get("failed_deliveries", []))
    return 0


def add_commands(sub: Any, cmd: Any, pid: tuple[str, dict[str, Any]]) -> None:
    """Register `fleetgate webhook ...` with the CLI's command helper `cmd`."""
    webhook = sub.add_parser("webhook", help="product webhooks").add_subparsers(required=True)
    wid = ("webhook", {"type": int, "help": "webhook ID"})
    cmd(
        webhook, "create", create, "send matching events to a URL", pid,
        ("event", {"nargs": "?", "default": "", "help": "event name prefix that triggers it"}),
        ("url", {"nargs": "?", "default": "", "help": "http(s) URL; Mustache variables may fill its path and query"}),
        ("--method", {"choices": ["GET", "POST", "PUT", "PATCH", "DELETE"], "default": "POST"}),
        ("--header", {"action": "append", "metavar": "'NAME: VALUE'", "help": "a request header (repeatable)"}),
        ("--query", {"action": "append", "metavar": "NAME=VALUE", "help": "a query parameter (repeatable)"}),
        ("--form", {"action": "append", "metavar": "NAME=VALUE", "help": "a form field (repeatable)"}),
        ("--json-body", {"dest": "json_template", "metavar": "TEMPLATE", "help": "JSON body: an object or a template"}),
        ("--body", {"metavar": "TEMPLATE", "help": "a raw body template"}),
        ("--response-topic", {"metavar": "TEMPLATE", "help": "default hook-response/{{{PARTICLE_EVENT_NAME}}}"}),
        ("--error-topic", {"metavar": "TEMPLATE", "help": "default hook-error/{{{PARTICLE_EVENT_NAME}}}"}),
        ("--no-defaults", {"action": "store_true", "help": "leave out event, data, published_at and coreid"}),
        ("--insecure", {"action": "store_true", "help": "do not verify the target's TLS certificate"}),
        ("--config", {"metavar": "FILE", "help": "a JSON file in Particle's webhook format"}),
    )  # fmt: skip
    cmd(webhook, "list", list_webhooks, "a product's webhooks with their counters", pid)
    cmd(webhook, "show", show, "one webhook's configuration and counters", pid, wid)
    for name, disabled in (("enable", False), ("disable", True)):
        p = cmd(webhook, name, set_disabled, f"{name} a webhook", pid, wid)
        p.set_defaults(disabled=disabled)
    cmd(webhook, "delete", delete, "delete a webhook", pid, wid)
    cmd(
        webhook,
        "deliveries",
        deliveries,
        "a webhook's counters, latest successes and errors, and failed deliveries",
        pid,
        wid,
    )
