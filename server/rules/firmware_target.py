"""Which firmware a device should run: Particle's precedence, as one pure function.

1. a development device never updates automatically;
2. a version locked on the device (Particle's `desired_firmware_version`) wins;
3. else the version a rollout has offered it (staged rollouts hold their devices' targets);
4. else the highest version released to any of the device's groups;
5. else the product's default release;
6. else nothing.

Equality, not ordering, decides whether to offer: a device on any other version than its
target is offered the target, so an operator can move devices down as well as up. Only a
connection holding the OTA privilege is ever offered anything (deny by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.codes import Privilege


@dataclass(frozen=True, slots=True)
class TargetFacts:
    development: bool = False
    locked_version: int | None = None
    rollout_version: int | None = None  # what a rollout has made this device's target
    group_versions: frozenset[int] = frozenset()  # versions released to any of the device's groups
    product_default: int | None = None


@dataclass(frozen=True, slots=True)
class Target:
    version: int | None
    reason: str


def target_firmware(facts: TargetFacts) -> Target:
    if facts.development:
        return Target(None, "development device: no automatic updates")
    if facts.locked_version is not None:
        return Target(facts.locked_version, "version locked on the device")
    if facts.rollout_version is not None:
        return Target(facts.rollout_version, "offered by a rollout")
    if facts.group_versions:
        return Target(max(facts.group_versions), "highest version released to the device's groups")
    if facts.product_default is not None:
        return Target(facts.product_default, "product default release")
    return Target(None, "no release applies")


def incompatibility(
    image_platform: int, image_product: int, device_platform: int, device_product: int | None
) -> str | None:
    """Why a device cannot run an image, from the image's header and the device's HELLO, or None.
    Such an image is never offered: the device would download all of it only to refuse it."""
    if image_platform != device_platform:
        return f"version built for platform {image_platform}; the device is platform {device_platform}"
    if image_product != device_product:
        return f"version built for product {image_product}; the device runs product {device_product}'s firmware"
    return None


def should_offer(privileges: Privilege, running: int, facts: TargetFacts) -> int | None:
    """The version to offer a connected device now, or None."""
    if Privilege.OTA not in privileges:
        return None
    target = target_firmware(facts).version
    return target if target is not None and target != running else None
