"""The target-firmware precedence, every row, plus the equality and privilege rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codes import Privilege
from server.rules.firmware_target import TargetFacts, incompatibility, should_offer, target_firmware

versions = st.integers(1, 65535)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (TargetFacts(development=True, locked_version=3, group_versions=frozenset({5}), product_default=4), None),
        (TargetFacts(locked_version=3, group_versions=frozenset({5}), product_default=4), 3),
        (TargetFacts(group_versions=frozenset({2, 9, 5}), product_default=4), 9),
        (TargetFacts(product_default=4), 4),
        (TargetFacts(), None),
    ],
    ids=["development-never", "locked-wins", "highest-group-release", "product-default", "nothing"],
)
def test_precedence(facts: TargetFacts, expected: int | None) -> None:
    assert target_firmware(facts).version == expected


def test_a_locked_lower_version_moves_a_device_down() -> None:
    facts = TargetFacts(locked_version=2, product_default=7)
    assert should_offer(Privilege.all(), running=7, facts=facts) == 2


def test_a_group_release_below_the_default_still_wins() -> None:
    """Particle's rule is precedence, not the highest number overall."""
    assert target_firmware(TargetFacts(group_versions=frozenset({3}), product_default=8)).version == 3


def test_a_device_on_its_target_is_not_offered_anything() -> None:
    assert should_offer(Privilege.all(), running=4, facts=TargetFacts(product_default=4)) is None


@given(
    privileges=st.sampled_from([p for p in Privilege if Privilege.OTA not in p] + [Privilege.NONE]),
    running=versions,
    locked=st.none() | versions,
    groups=st.frozensets(versions, max_size=4),
    default=st.none() | versions,
)
def test_without_the_ota_privilege_nothing_is_ever_offered(
    privileges: Privilege, running: int, locked: int | None, groups: frozenset[int], default: int | None
) -> None:
    facts = TargetFacts(locked_version=locked, group_versions=groups, product_default=default)
    assert should_offer(privileges, running, facts) is None


@given(
    running=versions,
    locked=st.none() | versions,
    groups=st.frozensets(versions, max_size=4),
    default=st.none() | versions,
)
def test_offer_is_the_target_exactly_when_it_differs(
    running: int, locked: int | None, groups: frozenset[int], default: int | None
) -> None:
    facts = TargetFacts(locked_version=locked, group_versions=groups, product_default=default)
    target = target_firmware(facts).version
    offered = should_offer(Privilege.all(), running, facts)
    assert offered == (target if target is not None and target != running else None)


@given(st.integers(0, 65535), st.integers(1, 100), st.integers(0, 65535), st.none() | st.integers(1, 100))
def test_incompatibility_platform_then_product(
    image_platform: int, image_product: int, platform: int, product: int | None
) -> None:
    why = incompatibility(image_platform, image_product, platform, product)
    if image_platform != platform:
        assert why is not None and f"platform {image_platform}" in why and f"platform {platform}" in why
    elif image_product != product:
        assert why is not None and f"product {image_product}" in why
    else:
        assert why is None
