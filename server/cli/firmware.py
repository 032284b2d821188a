"""`fleetgate firmware`, `group` and the device firmware commands.

keygen, sign, verify and inspect run offline: the signing key stays on the machine that signs
and never needs to reach the server. The rest are one API call each.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..firmware.image import FirmwareError, inspect, parse_header
from ..firmware.signing import SigningError, generate_key, load_key, parse_public_key, parse_signature, sign, verify
from ..firmware.signing import write_key as write_signing_key
from .client import ApiClient, CliError
from .operator import _read, emit, ok

FIRMWARE_COLUMNS = ["version", "title", "size", "platform_id", "product_default", "groups", "released_at", "sha256"]
GROUP_COLUMNS = ["name", "fw_version", "device_count", "description"]


def _sig_path(binary: Path, given: Path | None) -> Path:
    return given if given is not None else binary.with_name(binary.name + ".sig")


# ---------------------------------------------------------------------- offline


def keygen(args: argparse.Namespace) -> int:
    key = generate_key()
    try:
        pub = write_signing_key(args.out, key)
    except SigningError as exc:
        raise CliError(str(exc)) from None
    public = pub.read_text().strip()
    data = {"key_file": str(args.out), "public_key": public, "public_key_file": str(pub)}
    return ok(
        args, data, f"signing key written to {args.out} (mode 0600; keep it off the server)\npublic key {public}"
        f" (also in {pub}): build it into your bootloader"
    )  # fmt: skip


def sign_file(args: argparse.Namespace) -> int:
    data = _read(args.file)
    try:
        signature = sign(data, load_key(args.key))
    except SigningError as exc:
        raise CliError(str(exc)) from None
    out = _sig_path(args.file, args.out)
    try:
        out.write_text(signature.hex() + "\n")
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}") from None
    return ok(args, {"signature_file": str(out), "signature": signature.hex()}, f"signature written to {out}")


def verify_file(args: argparse.Namespace) -> int:
    data = _read(args.file)
    given = Path(args.public_key)
    try:
        public = parse_public_key(given.read_text() if given.is_file() else args.public_key)
        signature = parse_signature(_read(_sig_path(args.file, args.signature)))
    except SigningError as exc:
        raise CliError(str(exc)) from None
    good = verify(data, signature, public)
    ok(args, {"valid": good}, "signature OK" if good else "signature does NOT match this binary and key")
    return 0 if good else 1


def inspect_file(args: argparse.Namespace) -> int:
    data = _read(args.file)
    try:
        image = inspect(data)
    except FirmwareError as exc:
        raise CliError(f"{args.file}: {exc.message} ({exc.what})") from None
    h = image.header
    row = {"product_id": h.product_id, "version": h.firmware_version, "platform_id": h.platform_id,
           "size": image.size, "sha256": image.sha256, "header_version": h.header_version}  # fmt: skip
    return emit(args, row, list(row), [row])


# ---------------------------------------------------------------------- firmware over the API


def upload(api: ApiClient, args: argparse.Namespace) -> int:
    data = _read(args.file)
    version = args.version
    if version is None:  # the header knows; the server checks the two agree anyway
        try:
            version = parse_header(data).firmware_version
        except FirmwareError as exc:
            raise CliError(f"{args.file}: {exc.message}; pass --version") from None
    form = {"version": str(version), "title": args.title or args.file.stem, "description": args.description}
    files: dict[str, Any] = {"binary": (args.file.name, data, "application/octet-stream")}
    if args.signature is not None:
        files["signature"] = (args.signature.name, _read(args.signature), "application/octet-stream")
    record = api.post(f"/v1/products/{args.product}/firmware", data=form, files=files)
    signed = " (signed)" if record.get("signature") else ""
    return ok(args, record, f"uploaded version {record['version']} of product {args.product}: "
              f"{record['size']} bytes, sha256 {record['sha256']}{signed}")  # fmt: skip


def list_firmware(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get(f"/v1/products/{args.product}/firmware")
    return emit(args, data, FIRMWARE_COLUMNS, data)


def show(api: ApiClient, args: argparse.Namespace) -> int:
    record = api.get(f"/v1/products/{args.product}/firmware/{args.version}")
    return emit(args, record, [c for c in record if c != "uploaded_by"], [record])


def _targets(record: dict[str, Any]) -> list[str]:
    return (["product default"] if record["product_default"] else []) + [f"group {g}" for g in record["groups"]]


def _preview(api: ApiClient, args: argparse.Namespace, body: dict[str, Any]) -> int:
    del body["intelligent"]
    impact = api.post(f"/v1/products/{args.product}/firmware/release/preview", params={"sample": 1000}, json=body)
    lines = [f"releasing version {args.version} would update {impact['devices']} device(s)"]
    lines += [f"  {d['id']} -> version {d['version']}" for d in impact["sample"]]
    if impact["devices"] > len(impact["sample"]):
        lines.append(f"  ... and {impact['devices'] - len(impact['sample'])} more")
    return ok(args, impact, "\n".join(lines))


def release(api: ApiClient, args: argparse.Namespace) -> int:
    if not args.default and not args.group:  # the API would take it as "unrelease everywhere"
        raise CliError(
            f"give a target: --default or --group GROUP (to withdraw a release: "
            f"fleetgate firmware unrelease {args.product} {args.version})"
        )
    body = {"version": args.version, "product_default": args.default, "groups": args.group or [],
            "intelligent": args.intelligent}  # fmt: skip
    if args.preview:
        return _preview(api, args, body)
    record = api.put(f"/v1/products/{args.product}/firmware/release", json=body)
    text = f"version {args.version} released to {', '.join(_targets(record))}"
    return ok(args, record, text + (" (intelligent)" if record["intelligent"] else ""))


def unrelease(api: ApiClient, args: argparse.Namespace) -> int:
    """Withdraw a version from the targets named (none named: from all of them), keeping the rest.

    The API has one verb for both, as Particle has it: a release names exactly the targets a version
    keeps. So this reads the version's targets and releases it again to what remains."""
    path = f"/v1/products/{args.product}/firmware"
    record = api.get(f"{path}/{args.version}")
    everything = not args.default and not args.group
    if not _targets(record):
        raise CliError(f"version {args.version} of product {args.product} is not released")
    if args.default and not record["product_default"]:
        raise CliError(f"version {args.version} is not the product default")
    named = list(args.group or [])
    missing = [g for g in named if g not in record["groups"]]
    if missing:
        raise CliError(f"version {args.version} is not released to group {', '.join(missing)}")
    keep_default = record["product_default"] and not (everything or args.default)
    keep_groups = [] if everything else [g for g in record["groups"] if g not in named]
    body = {"version": args.version, "product_default": keep_default, "groups": keep_groups,
            "intelligent": record["intelligent"]}  # fmt: skip
    after = api.put(f"{path}/release", json=body)
    left = _targets(after)
    still = f"; still released to {', '.join(left)}" if left else "; no longer released"
    return ok(args, after, f"version {args.version} withdrawn from {', '.join(_withdrawn(record, after))}{still}")


def _withdrawn(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [t for t in _targets(before) if t not in _targets(after)]


def delete(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.delete(f"/v1/products/{args.product}/firmware/{args.version}")
    return ok(args, data, f"version {args.version} of product {args.product} deleted")


# ---------------------------------------------------------------------- groups and devices


def group_create(api: ApiClient, args: argparse.Namespace) -> int:
    body = {"name": args.name, "description": args.description}
    group = api.post(f"/v1/products/{args.product}/groups", json=body)["group"]
    return ok(args, group, f"group {group['name']} created in product {args.product}")


def group_list(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.get(f"/v1/products/{args.product}/groups")
    return emit(args, data, GROUP_COLUMNS, data["groups"])


def group_delete(api: ApiClient, args: argparse.Namespace) -> int:
    data = api.delete(f"/v1/products/{args.product}/groups/{args.name}")
    return ok(args, data, f"group {args.name} deleted from product {args.product}")


def device_groups(api: ApiClient, args: argparse.Namespace) -> int:
    path = f"/v1/products/{args.product}/devices/{args.device_id}"
    device = api.put(path, json={"groups": args.groups})
    return ok(args, device, f"{args.device_id}: groups {', '.join(device['groups']) or '(none)'}")


def device_lock(api: ApiClient, args: argparse.Namespace) -> int:
    if args.unlock == (args.version is not None):
        raise CliError("give a firmware version to lock to, or --unlock")
    path = f"/v1/products/{args.product}/devices/{args.device_id}"
    device = api.put(path, json={"desired_firmware_version": args.version})
    text = f"{args.device_id}: unlocked" if args.unlock else f"{args.device_id}: locked to version {args.version}"
    return ok(args, device, text)
