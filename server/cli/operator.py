"""Operator commands of `fleetgate`: each is one or two API calls and a table or JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..keyfile import private_key_column
from .client import ApiClient, CliError

Command = Callable[[ApiClient, argparse.Namespace], int]


def emit(args: argparse.Namespace, data: Any, columns: Sequence[str], rows: list[dict[str, Any]]) -> int:
    """Print JSON with --json, else a table of `columns` over `rows`."""
    if getattr(args, "json", False):
        print(json.dumps(data))
        return 0
    if not rows:
        print("(none)")
        return 0
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, dict):  # e.g. device_counts: approved=3,quarantined=1
        return ",".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def ok(args: argparse.Namespace, data: Any, text: str) -> int:
    print(json.dumps(data) if getattr(args, "json", False) else text)
    return 0


# ---------------------------------------------------------------------- products


def product_create(api: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "policy": args.policy}
    if args.id is not None:
        body["id"] = args.id
    if args.slug:
        body["slug"] = args.slug
    product = api.post("/v1/products", json=body)["product"]
    return ok(args, product, f"created product {product['id']} ({product['slug']}), policy {product['policy']}")


def product_list(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get("/v1/products")
    return emit(args, data, ["id", "slug", "name", "policy"], data["products"])


def product_show(api: ApiClient, args: argparse.Namespace) -> int:
    product = api.get(f"/v1/products/{args.product}")["product"]
    return emit(args, product, list(product), [product])


def product_policy(api: ApiClient, args: argparse.Namespace) -> int:
    if args.policy is None:  # no value: show it
        product = api.get(f"/v1/products/{args.product}")["product"]
        return ok(args, product, f"product {product['id']}: policy {product['policy']}")
    product = api.put(f"/v1/products/{args.product}", json={"policy": args.policy})["product"]
    return ok(args, product, f"product {product['id']}: policy {product['policy']}")


# What the API says happened to one device (its `action`), as a sentence.
_ADDED = {
    "preadded": "pre-added (it was not in quarantine or on the Denied list)",
    "approved": "approved from quarantine",
    "reapproved": "re-approved from the Denied list",
    "existing": "already a member",
}


def _add_device(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.post(f"/v1/products/{args.product}/devices", json={"id": args.device_id, "move": args.move})
    if data.get("invalidDeviceIds") or data.get("nonmemberDeviceIds"):
        raise CliError(f"{args.device_id}: not added: {json.dumps(data)}")
    action = data.get("action") or ("existing" if data.get("existingDeviceIds") else "added")  # an older server
    return ok(args, data, f"{args.device_id}: {_ADDED.get(action, action)} (product {args.product})")


def product_add_device(api: ApiClient, args: argparse.Namespace) -> int:
    return _add_device(api, args)


def product_approve(api: ApiClient, args: argparse.Namespace) -> int:
    return _add_device(api, args)


def product_deny(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.delete(f"/v1/products/{args.product}/devices/{args.device_id}", json={"deny": True})
    return ok(args, data, f"{args.device_id}: denied (product {args.product})")


def product_remove(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.delete(f"/v1/products/{args.product}/devices/{args.device_id}")
    return ok(args, data, f"{args.device_id}: {data.get('action', 'removed')} (product {args.product})")


DEVICE_COLUMNS = ["id", "online", "status", "firmware_version", "firmware_product_id", "owner", "last_heard"]


def _status(device: dict[str, Any]) -> str:
    if device.get("denied"):
        return "denied"
    if device.get("quarantined"):
        return "quarantined"
    return "mismatch" if device.get("mismatch") else "approved"


def product_devices(api: ApiClient, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"page": args.page, "per_page": args.per_page}
    if args.status:
        params["status"] = args.status
    if args.firmware_version is not None:
        params["firmwareVersion"] = args.firmware_version
    if args.online:
        params["online"] = "true" if args.online == "yes" else "false"
    if args.sort:
        params |= {"sortAttr": args.sort, "sortDir": "desc" if args.desc else "asc"}
    data = api.get(f"/v1/products/{args.product}/devices", params=params)
    rows = [{**d, "status": _status(d)} for d in data["devices"]]
    code = emit(args, data, DEVICE_COLUMNS, rows)
    if not args.json:
        print(f"page {args.page} of {data['meta']['total_pages']}")
    return code


def product_import(api: ApiClient, args: argparse.Namespace) -> int:
    content = _read(args.file)
    data = api.post(f"/v1/products/{args.product}/devices", files={"file": (args.file.name, content, "text/csv")})
    problems = len(data.get("invalidDeviceIds", [])) + len(data.get("nonmemberDeviceIds", []))
    ok(args, data, f"added {data['updated']} devices; invalid {data.get('invalidDeviceIds', [])};"
       f" in another product {data.get('nonmemberDeviceIds', [])}")  # fmt: skip
    return 1 if problems else 0


# ---------------------------------------------------------------------- device registry (keys)


def _read(path: Path) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _refuse_private_keys(path: Path, content: bytes) -> None:
    column = private_key_column(content.decode("utf-8-sig", errors="replace"))
    if column is not None:
        public = path.with_name("devices.csv") if str(path) != "-" else Path("devices.csv")
        raise CliError(
            f"{path} holds private keys (column {column!r}); nothing registered: import the public keys, {public}"
        )


def device_import(api: ApiClient, args: argparse.Namespace) -> int:
    content = _read(args.file)
    _refuse_private_keys(args.file, content)
    data = api.post("/v1/provisioning", files={"file": (args.file.name, content, "text/csv")})
    errors = data.get("errors", [])
    if args.json:
        print(json.dumps(data))
    else:
        print(f"registered {len(data['registered'])} device keys ({len(errors)} errors)")
        for error in errors:
            print(f"  {error.get('id')}: {error.get('error')}", file=sys.stderr)
    return 1 if errors else 0


def device_add(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.post(f"/v1/provisioning/{args.device_id}", json={"public_key": args.public_key})
    return ok(args, data, f"{args.device_id}: key registered")


def device_list(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get("/v1/devices")
    devices = data["devices"] if isinstance(data, dict) else data
    code = emit(args, data, ["id", "product_id", "online", "firmware_version", "platform_id", "last_heard"], devices)
    if not args.json:
        print(f"{len(devices)} devices")
    return code


# The product's view of one device adds these (null elsewhere): shown as their own lines.
FIRMWARE_FIELDS = {
    "groups": "groups",
    "desired_firmware_version": "locked to version",
    "targeted_firmware_release_version": "should run version",
    "firmware_target_reason": "because",
    "firmware_update_pending": "update pending",
}


def device_show(api: ApiClient, args: argparse.Namespace) -> int:
    if args.product is not None:
        device = api.get(f"/v1/products/{args.product}/devices/{args.device_id}")
    else:
        device = api.get(f"/v1/devices/{args.device_id}")
        if device.get("product_id") is not None:  # the product's view adds groups, lock and pending update
            with contextlib.suppress(CliError):  # e.g. an owner who is not on the product's team
                device = api.get(f"/v1/products/{device['product_id']}/devices/{args.device_id}")
    if args.json:
        return ok(args, device, "")
    width = max(map(len, [*device, *FIRMWARE_FIELDS.values()]))
    for key, value in device.items():
        if key not in FIRMWARE_FIELDS:
            print(f"{key.ljust(width)}  {_cell(value)}")
    if device.get("targeted_firmware_release_version", None) is not None or device.get("firmware_target_reason"):
        for key, label in FIRMWARE_FIELDS.items():
            print(f"{label.ljust(width)}  {_cell(device.get(key))}")
    return 0


def device_owner(api: ApiClient, args: argparse.Namespace) -> int:
    path = f"/v1/products/{args.product}/devices/{args.device_id}/owner"
    if args.clear:
        data = api.delete(path)
        return ok(args, data, f"{args.device_id}: owner cleared")
    body = {"user": args.user} if args.user else {"customer": args.customer}
    data = api.put(path, json=body)
    return ok(args, data, f"{args.device_id}: owner set to {args.user or args.customer}")


# ---------------------------------------------------------------------- people


def team_list(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get(f"/v1/products/{args.product}/team")
    return emit(args, data, ["username", "role"], data["team"])


def team_add(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.post(f"/v1/products/{args.product}/team", json={"username": args.username, "role": args.role})
    return ok(args, data, f"{args.username}: {args.role} of product {args.product}")


def team_remove(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.delete(f"/v1/products/{args.product}/team/{args.username}")
    return ok(args, data, f"{args.username}: removed from product {args.product}")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if args.password:
        return str(args.password)
    raise CliError("give --password or --password-stdin")


def user_create(api: ApiClient, args: argparse.Namespace) -> int:
    body = {"username": args.username, "password": _password(args), "admin": args.admin}
    data = api.post("/v1/users", json=body)
    return ok(args, data, f"user {args.username} created{' (admin)' if args.admin else ''}")


def customer_create(api: ApiClient, args: argparse.Namespace) -> int:
    body = {"username": args.username, "password": _password(args)}
    data = api.post(f"/v1/products/{args.product}/customers", json=body)
    return ok(args, data, f"customer {args.username} created in product {args.product}")


def customer_list(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get(f"/v1/products/{args.product}/customers")
    return emit(args, data, ["id", "username", "created_at"], data["customers"])


def audit(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get(f"/v1/products/{args.product}/audit", params={"after": args.after, "limit": args.limit})
    return emit(args, data, ["id", "at", "actor", "action", "device_id", "reason"], data["audit"])
