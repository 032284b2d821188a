"""The drill's inputs: --mix and --stages, the seeded assignment of faults, the rollout body."""

from __future__ import annotations

from collections import Counter

import pytest

from firmware_sim.drill_config import (
    DrillConfig,
    DrillConfigError,
    MixPart,
    assign_profiles,
    parse_mix,
    parse_stages,
)


def test_a_mix_takes_percentages_and_counts() -> None:
    mix = parse_mix("drop=3%, corrupt=2,late=0.5%")
    assert mix == {"drop": MixPart(percent=3.0), "corrupt": MixPart(count=2), "late": MixPart(percent=0.5)}
    assert mix["drop"].of(200) == 6 and mix["corrupt"].of(1) == 1 and mix["late"].of(1000) == 5
    assert parse_mix("") == {}


@pytest.mark.parametrize("text", ["drop", "drop=x", "slow=1%", "drop=101%", "drop=-1", "drop=1%,drop=2%", "drop=nan%"])
def test_a_bad_mix_is_refused_with_the_reason(text: str) -> None:
    with pytest.raises(DrillConfigError, match="--mix"):
        parse_mix(text)


def test_stages_are_passed_on_as_counts_or_percentages() -> None:
    assert parse_stages("5%,25%,100%") == ["5%", "25%", "100%"]
    assert parse_stages("10, 100,1000") == [10, 100, 1000]
    for bad in ("", "ten", "5%,x"):
        with pytest.raises(DrillConfigError, match="--stages"):
            parse_stages(bad)


def test_faults_go_to_disjoint_devices_and_lateness_to_healthy_ones() -> None:
    profiles = assign_profiles(1000, parse_mix("drop=3%,corrupt=1%,refuse=1%,bootfail=1%,late=5%"), 7, 100_000, 5.0)
    counts = Counter(p.fault for p in profiles)
    assert counts == {"healthy": 940, "drop": 30, "corrupt": 10, "refuse": 10, "bootfail": 10}
    late = [p for p in profiles if p.late_by is not None]
    assert len(late) == 50 and all(p.fault == "healthy" and 1.0 <= p.late_by <= 5.0 for p in late)  # type: ignore[operator]
    drops = [p.drop_after for p in profiles if p.fault == "drop"]
    assert all(d is not None and 25_000 <= d <= 75_000 for d in drops)
    assert all(p.drop_after is None for p in profiles if p.fault != "drop")


def test_the_same_seed_gives_the_same_fleet_and_another_seed_another() -> None:
    mix = parse_mix("drop=10%,refuse=10%,late=10%")
    assert assign_profiles(100, mix, 1, 1000, 5.0) == assign_profiles(100, mix, 1, 1000, 5.0)
    assert assign_profiles(100, mix, 1, 1000, 5.0) != assign_profiles(100, mix, 2, 1000, 5.0)


def test_a_mix_larger_than_the_fleet_is_refused() -> None:
    with pytest.raises(DrillConfigError, match="more faulty devices"):
        assign_profiles(10, parse_mix("drop=6,refuse=6"), 0, 1000, 5.0)
    with pytest.raises(DrillConfigError, match="late"):
        assign_profiles(10, parse_mix("drop=8,late=3"), 0, 1000, 5.0)


def test_the_rollout_body_follows_the_api_contract() -> None:
    body = DrillConfig(strategy="staged", stages="5%,100%", on_error="rollback", retries=1).rollout_body(2)
    assert body == {
        "version": 2, "product_default": True, "strategy": "staged", "stages": ["5%", "100%"],
        "max_concurrent": 50, "retries": 1, "device_timeout": 120.0, "success_threshold": 0.9,
        "error_threshold": 0.1, "error_action": "rollback",
    }  # fmt: skip
    assert "stages" not in DrillConfig().rollout_body(2)
    exponential = DrillConfig(strategy="exponential", rate_start=60.0, retry_delay=1.0).rollout_body(2)
    assert exponential["rate_start"] == 60.0 and exponential["retry_delay"] == 1.0
    assert "rate_factor" not in exponential


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"devices": 0}, "--devices"),
        ({"size": 10}, "--size"),
        ({"strategy": "random"}, "--strategy"),
        ({"on_error": "panic"}, "--on-error"),
        ({"expect": "done"}, "--expect"),
        ({"restart_at": 0.0}, "--restart-at"),
        ({"kill_at": (0.5, 0.25)}, "kill points"),
        ({"kill_at": (0.0,)}, "kill points"),
        ({"error_threshold": 1.5}, "--error-threshold"),
        ({"timeout": 0.0}, "--timeout"),
        ({"mix": "drop=x"}, "--mix"),
        ({"strategy": "staged", "stages": "x"}, "--stages"),
    ],
)
def test_validate_names_the_bad_option(change: dict[str, object], message: str) -> None:
    with pytest.raises(DrillConfigError, match=message):
        DrillConfig(**change).validate()  # type: ignore[arg-type]
