"""The webhook outage drill, small: `fleetgate serve` subprocesses, devices publishing over TCP with the
receiver down, a clean restart and a `kill -9`, then the receiver comes up and every event arrives."""

from __future__ import annotations

from pathlib import Path

from firmware_sim.chaos import webhook_outage


async def test_no_event_is_lost_across_a_clean_restart_and_a_kill_9(tmp_path: Path) -> None:
    said: list[str] = []
    figures = await webhook_outage.run(
        events=24, outage=3.0, retry_delays="0.5,1", devices=4, work=tmp_path, say=said.append
    )
    assert figures.published == 24, said
    assert figures.missing == 0 and figures.unique_keys == 24, figures
    assert figures.delivered == 24 + figures.duplicates  # duplicates only from a kill between send and mark
    assert figures.counters["pending"] == 0 and figures.counters["triggered"] == 24, figures


def test_the_drill_refuses_bad_arguments_in_one_line() -> None:
    assert webhook_outage.main(["--events", "0"]) == 2
