"""Operator actions on product firmware, device groups, releases and firmware locks.

Reached as `Operations.firmware`. Like every operator action, each change is one transaction on
the store's writer with an audit entry; checks that depend on stored state run inside it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial

import trio

from ..cluster import OfferFirmware
from ..firmware.cache import ImageMismatch
from ..firmware.image import FirmwareError, FirmwareMismatch, check_target, inspect
from ..firmware.node_cache import BinaryMissing
from ..firmware.signing import SIGNATURE_LEN
from ..logs import now
from ..rules.errors import Conflict, Invalid, NotFound
from ..rules.firmware_target import Releases, release_impact
from ..store.reads import StoreReads
from ..store.records import FirmwareRecord, GroupRecord
from ..store.tx import StoreTx
from .base import OpsBase, device_id_or_invalid

GROUP_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")  # Particle's group names
MAX_TITLE = 255
MAX_DESCRIPTION = 4096
MAX_GROUPS = 256  # groups named in one request
LOCK_FIELD = "desired_firmware_version"  # Particle's name for a device's locked version


def check_version(version: int, field: str) -> int:
    if not 1 <= version <= 65535:
        raise Invalid(f"{field} must be a firmware version, 1..65535", field)
    return version


def check_group_names(names: Sequence[str], field: str = "groups") -> list[str]:
    if len(names) > MAX_GROUPS:
        raise Invalid(f"at most {MAX_GROUPS} groups at once", field)
    for name in names:
        if not GROUP_NAME.match(name):
            raise Invalid(f"group names are 1..64 of a-z, 0-9, _ and -: {name[:80]!r} is not", field)
    return sorted(set(names))


def _display_name(name: str) -> str:
    """The uploaded file's name, kept for display only: printable, no directories, bounded."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isprintable())[:255]


def _unknown_groups(store: StoreReads, product_id: int, names: Sequence[str]) -> None:
    known = {g.name for g in store.list_groups(product_id)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Invalid(f"product {product_id} has no group named {unknown[0]!r} (create it first)", "groups")


def _member(store: StoreReads, product_id: int, device_id: str) -> None:
    record = store.get_device(device_id)
    if record is None or record.product_id != product_id:
        raise NotFound(f"device {device_id} is not a member of product {product_id}")


class FirmwareOperations:
    def __init__(self, ops: OpsBase) -> None:
        self.ops = ops

    # ------------------------------------------------------------------ firmware

    async def get(self, key: int | str, version: int) -> FirmwareRecord:
        product = await self.ops.product(key)
        record = await self.ops.read(self.ops.sync.get_firmware, product.id, version)
        if record is None:
            raise NotFound(f"product {product.id} has no firmware version {version}", "version")
        return record

    async def binary(self, key: int | str, version: int) -> tuple[FirmwareRecord, bytes]:
        """The version and its binary, from this node's copy or the store (node_cache.py)."""
        record = await self.get(key, version)
        try:
            return record, await self.ops.ctx.binaries.image(record.sha256)
        except BinaryMissing:
            # Uploaded before the store kept binaries, to a node that has not started since.
            raise NotFound(f"the binary of version {version} is not in the store yet", "version") from None
        except ImageMismatch:  # logged by the cache (firmware_blob_corrupt): never served
            raise NotFound(f"the stored binary of version {version} does not match its SHA-256", "version") from None

    async def upload(
        self,
        actor: str,
        key: int | str,
        data: bytes,
        *,
        version: int,
        title: str,
        description: str = "",
        name: str = "",
        signature: bytes | None = None,
    ) -> FirmwareRecord:
        product = await self.ops.product(key)
        check_version(version, "version")
        title = title.strip()
        if not 1 <= len(title) <= MAX_TITLE:
            raise Invalid(f"title must be 1..{MAX_TITLE} characters", "title")
        if len(description) > MAX_DESCRIPTION:
            raise Invalid(f"description must be at most {MAX_DESCRIPTION} characters", "description")
        if signature is not None and len(signature) != SIGNATURE_LEN:
            raise Invalid(f"signature must be {SIGNATURE_LEN} bytes (Ed25519)", "signature")
        if await self.ops.read(self.ops.sync.get_firmware, product.id, version) is not None:
            raise Conflict(f"product {product.id} already has firmware version {version}", "version")
        try:
            limit = self.ops.ctx.config.max_firmware_size
            image = await trio.to_thread.run_sync(partial(inspect, data, max_size=limit))  # CRC, SHA-256
            check_target(image.header, product.id, version)
        except FirmwareMismatch as exc:
            raise Invalid(exc.message, "version" if exc.what == "firmware_version" else "binary") from None
        except FirmwareError as exc:
            raise Invalid(f"{exc.message} ({exc.what})", "binary") from None

        record = FirmwareRecord(
            product_id=product.id, version=version, title=title, description=description, name=_display_name(name),
            size=image.size, sha256=image.sha256, signature=signature, platform_id=image.header.platform_id,
            uploaded_at=now(), uploaded_by=actor,
        )  # fmt: skip

        def tx(s: StoreTx) -> None:
            s.put_firmware_blob(image.sha256, data)  # every node serves it from the store once committed
            s.insert_firmware(record)
            s.append_audit(
                now(), actor, "firmware_uploaded", product_id=product.id,
                detail={"version": version, "title": title, "size": image.size, "sha256": image.sha256,
                        "platform_id": record.platform_id, "signed": signature is not None},
            )  # fmt: skip

        await self.ops.tx("upload_firmware", tx)
        await trio.to_thread.run_sync(self.ops.ctx.binaries.keep, image.sha256, data)  # a fetch fewer here
        return await self.get(product.id, version)

    async def update_info(
        self, actor: str, key: int | str, version: int, *, title: str | None, description: str | None
    ) -> FirmwareRecord:
        """Particle's updateProductFirmware: a new title and/or description (the binary never changes)."""
        product = await self.ops.product(key)
        if title is not None:
            title = title.strip()
            if not 1 <= len(title) <= MAX_TITLE:
                raise Invalid(f"title must be 1..{MAX_TITLE} characters", "title")
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise Invalid(f"description must be at most {MAX_DESCRIPTION} characters", "description")

        def tx(s: StoreTx) -> None:
            record = s.get_firmware(product.id, version)
            if record is None:
                raise NotFound(f"product {product.id} has no firmware version {version}", "version")
            new_title = record.title if title is None else title
            new_description = record.description if description is None else description
            if (new_title, new_description) == (record.title, record.description):
                return  # nothing changes: nothing to write or audit
            s.update_firmware_info(product.id, version, new_title, new_description)
            s.append_audit(
                now(), actor, "firmware_edited", product_id=product.id,
                detail={"version": version, "title": new_title, "description_changed": description is not None},
            )  # fmt: skip

        await self.ops.tx("edit_firmware", tx)
        return await self.get(product.id, version)

    async def delete(self, actor: str, key: int | str, version: int) -> None:
        product = await self.ops.product(key)

        def tx(s: StoreTx) -> FirmwareRecord:
            record = s.get_firmware(product.id, version)
            if record is None:
                raise NotFound(f"product {product.id} has no firmware version {version}", "version")
            if record.released:
                where = ["the product default"] if record.product_default else []
                where += [f"group {g}" for g in record.groups]
                raise Conflict(
                    f"version {version} is released ({', '.join(where)}): release another version in its place first",
                    "version",
                )
            locked = s.firmware_locks_on(product.id, version)
            if locked:
                raise Conflict(f"{len(locked)} device(s) are locked to version {version}, e.g. {locked[0]}", "version")
            rollouts = s.rollouts_needing_version(product.id, version)
            if rollouts:
                rollout_id, state = rollouts[0]
                raise Conflict(
                    f"rollout {rollout_id} ({state}) still needs version {version}:"
                    " abort it, or release another version so its devices' targets move on",
                    "version",
                )
            s.delete_firmware(product.id, version)
            s.append_audit(
                now(), actor, "firmware_deleted", product_id=product.id,
                detail={"version": version, "sha256": record.sha256},
            )  # fmt: skip
            return record

        record = await self.ops.tx("delete_firmware", tx)
        # The store dropped the binary with its last version (of any product): this node's copy
        # goes too; other nodes drop theirs at their next start.
        if record.sha256 not in await self.ops.read(self.ops.sync.firmware_blob_digests):
            await trio.to_thread.run_sync(self.ops.ctx.binaries.discard, record.sha256)

    async def release(
        self,
        actor: str,
        key: int | str,
        version: int,
        *,
        product_default: bool,
        groups: Sequence[str],
        intelligent: bool,
    ) -> FirmwareRecord:
        """Release `version` to exactly these targets (see Store.release_firmware)."""
        product = await self.ops.product(key)
        check_version(version, "version")
        names = check_group_names(groups)

        def tx(s: StoreTx) -> None:
            if s.get_firmware(product.id, version) is None:
                raise NotFound(f"product {product.id} has no firmware version {version}", "version")
            _unknown_groups(s, product.id, names)
            before = s.list_releases(product.id)
            s.release_firmware(
                product.id, version, product_default=product_default, groups=names, intelligent=intelligent,
                at=now(), actor=actor,
            )  # fmt: skip
            # Targets left behind by finished rollouts give way to the release rules again.
            s.clear_rollout_assignments(product.id)
            # What other versions lost to this release, for the audit trail.
            taken = {
                ("product_default" if r.group is None else f"group:{r.group}"): r.version
                for r in before
                if r.version != version and ((r.group is None and product_default) or r.group in names)
            }
            dropped = [
                "product_default" if r.group is None else f"group:{r.group}"
                for r in before
                if r.version == version and not ((r.group is None and product_default) or r.group in names)
            ]
            s.append_audit(
                now(), actor, "firmware_released", product_id=product.id,
                detail={"version": version, "product_default": product_default, "groups": names,
                        "intelligent": intelligent, "replaced": taken, "unreleased_from": dropped},
            )  # fmt: skip
            if intelligent:  # Particle's intelligent release: online devices are offered it now
                self.ops.notify(s, OfferFirmware(product_id=product.id))

        await self.ops.tx("release_firmware", tx)
        return await self.get(product.id, version)

    async def release_preview(
        self, key: int | str, version: int, *, product_default: bool, groups: Sequence[str]
    ) -> list[tuple[str, int]]:
        """The devices `release` with these targets would make due for an update (device ID, the
        version it would be offered), by the target rule itself; nothing changes."""
        product = await self.ops.product(key)
        check_version(version, "version")
        names = check_group_names(groups)

        def read(s: StoreReads) -> list[tuple[str, int]]:
            if s.get_firmware(product.id, version) is None:
                raise NotFound(f"product {product.id} has no firmware version {version}", "version")
            _unknown_groups(s, product.id, names)
            releases: Releases = {r.group: r.version for r in s.list_releases(product.id)}
            return release_impact(
                s.release_candidates(product.id), releases, version,
                product_default=product_default, groups=frozenset(names),
            )  # fmt: skip

        return await self.ops.read(read, self.ops.sync)

    # ------------------------------------------------------------------ groups

    async def groups(self, key: int | str) -> list[GroupRecord]:
        product = await self.ops.product(key)
        return await self.ops.read(self.ops.sync.list_groups, product.id)

    async def group(self, key: int | str, name: str) -> GroupRecord:
        product = await self.ops.product(key)
        group = await self.ops.read(self.ops.sync.get_group, product.id, name)
        if group is None:
            raise NotFound(f"product {product.id} has no group named {name[:80]!r}", "name")
        return group

    async def create_group(self, actor: str, key: int | str, name: str, description: str = "") -> GroupRecord:
        product = await self.ops.product(key)
        check_group_names([name], "name")
        if len(description) > MAX_DESCRIPTION:
            raise Invalid(f"description must be at most {MAX_DESCRIPTION} characters", "description")

        def tx(s: StoreTx) -> GroupRecord:
            group = s.insert_group(product.id, name, description, now())
            s.append_audit(now(), actor, "group_created", product_id=product.id, detail={"group": name})
            return group

        return await self.ops.tx("create_group", tx)

    async def delete_group(self, actor: str, key: int | str, name: str) -> None:
        product = await self.ops.product(key)

        def tx(s: StoreTx) -> None:
            group = s.get_group(product.id, name)
            if group is None:
                raise NotFound(f"product {product.id} has no group named {name[:80]!r}", "name")
            s.delete_group(product.id, name)
            s.append_audit(
                now(), actor, "group_deleted", product_id=product.id,
                detail={"group": name, "devices": group.device_count, "released_version": group.fw_version},
            )  # fmt: skip

        await self.ops.tx("delete_group", tx)

    # ------------------------------------------------------------------ devices

    async def update_device(
        self,
        actor: str,
        key: int | str,
        device_text: str,
        *,
        groups: Sequence[str] | None = None,
        lock: bool = False,
        version: int | None = None,
    ) -> None:
        """In one transaction: with `groups`, the device is in exactly those groups of the product
        afterwards (Particle's device update); with `lock`, it is locked to `version` (an uploaded
        version, released or not) or unlocked (None)."""
        product = await self.ops.product(key)
        device_id = device_id_or_invalid(device_text)
        names = None if groups is None else check_group_names(groups)
        if lock and version is not None:
            check_version(version, LOCK_FIELD)

        def tx(s: StoreTx) -> None:
            _member(s, product.id, device_id)
            if names is not None:
                _unknown_groups(s, product.id, names)
                before = s.device_groups(product.id, device_id)
                s.set_device_groups(product.id, device_id, names)
                s.append_audit(
                    now(), actor, "device_groups_set", product_id=product.id, device_id=device_id,
                    detail={"groups": names, "was": before},
                )  # fmt: skip
            if lock:
                if version is not None and s.get_firmware(product.id, version) is None:
                    raise Invalid(f"product {product.id} has no firmware version {version}", LOCK_FIELD)
                was = s.firmware_lock(product.id, device_id)
                s.set_firmware_lock(product.id, device_id, version, now(), actor)
                s.append_audit(
                    now(), actor, "firmware_locked" if version is not None else "firmware_unlocked",
                    product_id=product.id, device_id=device_id, detail={"version": version, "was": was},
                )  # fmt: skip
            # A new lock or group may mean other firmware, now.
            self.ops.notify(s, OfferFirmware((device_id,), product.id))

        await self.ops.tx("update_device_firmware", tx)

    async def set_device_groups(self, actor: str, key: int | str, device_text: str, groups: Sequence[str]) -> None:
        await self.update_device(actor, key, device_text, groups=groups)

    async def lock_device(self, actor: str, key: int | str, device_text: str, version: int | None) -> None:
        await self.update_device(actor, key, device_text, lock=True, version=version)
