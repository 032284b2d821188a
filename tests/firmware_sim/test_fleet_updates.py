"""How `fleetsim run` counts the updates its devices installed."""

from __future__ import annotations

from firmware_sim.fleet import DeviceOutcome, summarize, updates_installed


def outcome(*updates: tuple[int, int]) -> DeviceOutcome:
    out = DeviceOutcome("00" * 12, outcome="connected")
    out.firmware_updates = [{"from": a, "to": b} for a, b in updates]
    return out


def test_one_path_is_named_once() -> None:
    outcomes = [outcome((1, 2)) for _ in range(10)] + [outcome()]
    assert updates_installed(outcomes) == "10 (1 -> 2)"
    summary = summarize(outcomes, 1.0)
    assert summary["updates_installed"] == 10 and summary["update_paths"] == {"1 -> 2": 10}


def test_several_paths_are_counted_each() -> None:
    outcomes = [outcome((1, 2), (2, 3)), outcome((1, 2))]
    assert updates_installed(outcomes) == "3 (1 -> 2: 2, 2 -> 3: 1)"


def test_nothing_installed_says_nothing() -> None:
    assert updates_installed([outcome()]) == ""
    assert summarize([outcome()], 1.0)["updates_installed"] == 0
