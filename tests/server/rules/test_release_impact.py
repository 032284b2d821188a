"""Which devices a release would update: the target rule run on the releases before and after,
with the rollout targets a release ends (finished rollouts') and keeps (unfinished ones')."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.rules.firmware_target import ReleaseCandidate, Releases, after_release, release_impact


def device(name: str, **facts: object) -> ReleaseCandidate:
    base: dict[str, object] = {
        "device_id": name, "running": 1, "development": False, "locked_version": None, "rollout_version": None,
        "active_rollout_version": None, "groups": frozenset(),
    }  # fmt: skip
    return ReleaseCandidate(**(base | facts))  # type: ignore[arg-type]


def impact(devices: list[ReleaseCandidate], releases: Releases, version: int, *groups: str, default: bool = False) -> (
    list[tuple[str, int]]
):  # fmt: skip
    return release_impact(devices, releases, version, product_default=default, groups=frozenset(groups))


def test_a_release_names_exactly_its_targets() -> None:
    before: Releases = {None: 1, "beta": 2, "lab": 2}
    assert after_release(before, 2, product_default=True, groups=frozenset()) == {None: 2}
    assert after_release(before, 3, product_default=False, groups=frozenset({"beta"})) == {None: 1, "beta": 3, "lab": 2}


def test_default_release_moves_members_without_a_stronger_target() -> None:
    devices = [
        device("plain"),
        device("on-it", running=2),  # already runs it: no update
        device("dev", development=True),
        device("locked", locked_version=1),
        device("grouped", groups=frozenset({"beta"})),  # its group's release wins over the default
    ]
    assert impact(devices, {None: 1, "beta": 1}, 2, default=True) == [("plain", 2)]


def test_unreleasing_a_version_moves_its_devices_to_what_is_left() -> None:
    devices = [device("beta-member", running=3, groups=frozenset({"beta"})), device("other", running=3)]
    # Version 3 released to beta and the default; releasing it to beta only hands the default back to
    # nobody (no default left): "other" has no target then, so nothing is offered to it.
    assert impact(devices, {None: 3, "beta": 3}, 3, "beta") == []
    # Releasing 4 to beta moves the beta member; the default stays 3 for the other.
    assert impact(devices, {None: 3, "beta": 3}, 4, "beta") == [("beta-member", 4)]


def test_finished_rollouts_give_way_and_unfinished_ones_hold() -> None:
    devices = [
        device("kept-by-finished", rollout_version=5, running=5),  # the release ends its target: moves to 6
        device("held-by-running", rollout_version=5, active_rollout_version=5),  # stays the rollout's
    ]
    assert impact(devices, {None: 5}, 6, default=True) == [("kept-by-finished", 6)]


@given(
    st.dictionaries(st.sampled_from([None, "a", "b"]), st.integers(1, 4)),
    st.integers(1, 4),
    st.booleans(),
    st.frozensets(st.sampled_from(["a", "b"])),
    st.integers(1, 4),
    st.frozensets(st.sampled_from(["a", "b"])),
)
def test_impacted_devices_end_on_a_new_version_they_do_not_run(
    releases: Releases, version: int, default: bool, groups: frozenset[str], running: int, member_of: frozenset[str]
) -> None:
    one = device("x", running=running, groups=member_of)
    for device_id, offered in release_impact([one], releases, version, product_default=default, groups=groups):
        assert device_id == "x" and offered != running
