"""A device's firmware as its product decides it: groups, lock, and the update it is due.

Added to single-device answers, so that an operator sees why a device will (or will not) be
updated without working the target rule out from releases, groups and rollouts by hand.
"""

from __future__ import annotations

from ..rules.firmware_target import TargetFacts, target_firmware
from ..store import Store
from .models import DeviceOut


def with_firmware(store: Store, product_id: int, device: DeviceOut) -> DeviceOut:
    """`device` (a member or a listed device of `product_id`) with its groups and firmware target."""
    record = store.get_device(device.id)
    facts = store.firmware_target_facts(product_id, device.id)
    # The inputs the OTA path gives the rule (ota_delivery._offer_target), read the same way.
    target = target_firmware(
        TargetFacts(
            development=record is not None and record.development,
            locked_version=facts.locked_version,
            rollout_version=store.rollout_assignment(product_id, device.id),
            group_versions=facts.group_versions,
            product_default=facts.product_default.version if facts.product_default else None,
        )
    )
    pending = target.version is not None and target.version != device.firmware_version
    return device.model_copy(
        update={
            "groups": list(facts.groups),
            "desired_firmware_version": facts.locked_version,
            "targeted_firmware_release_version": target.version,
            "firmware_target_reason": target.reason,
            "firmware_update_pending": pending,
        }
    )
