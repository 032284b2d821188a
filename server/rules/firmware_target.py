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


# ---------------------------------------------------------------------- what a release would change


@dataclass(frozen=True, slots=True)
class ReleaseCandidate:
    """A product member as a release preview sees it: what it runs and what picks its target."""

    device_id: str
    running: int | None
    development: bool
    locked_version: int | None
    rollout_version: int | None  # the newest assignment any rollout holds for it
    active_rollout_version: int | None  # the same, from unfinished rollouts only (a release keeps those)
    groups: frozenset[str]


Releases = dict[str | None, int]  # group name (None: the product default) -> released version


def after_release(releases: Releases, version: int, *, product_default: bool, groups: frozenset[str]) -> Releases:
    """The releases once `version` is released to exactly these targets (as the store writes it):
    its other releases end; the default and the named groups take it over from what they had."""
    out = {where: v for where, v in releases.items() if v != version}
    if product_default:
        out[None] = version
    for name in groups:
        out[name] = version
    return out


def _target(device: ReleaseCandidate, releases: Releases, rollout_version: int | None) -> Target:
    return target_firmware(
        TargetFacts(
            development=device.development,
            locked_version=device.locked_version,
            rollout_version=rollout_version,
            group_versions=frozenset(releases[g] for g in device.groups if g in releases),
            product_default=releases.get(None),
        )
    )


def release_impact(
    devices: list[ReleaseCandidate], releases: Releases, version: int, *, product_default: bool, groups: frozenset[str]
) -> list[tuple[str, int]]:
    """The devices this release makes due for an update, with the version each will be offered:
    their target changes and is not what they run. A release also ends the targets finished
    rollouts hold (ops.firmware.release), so only unfinished rollouts' count afterwards."""
    after = after_release(releases, version, product_default=product_default, groups=groups)
    out: list[tuple[str, int]] = []
    for device in devices:
        before = _target(device, releases, device.rollout_version).version
        new = _target(device, after, device.active_rollout_version).version
        if new is not None and new != before and new != device.running:
            out.append((device.device_id, new))
    return out
