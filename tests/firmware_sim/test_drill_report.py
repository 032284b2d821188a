"""The drill's report, summary, picture and live bars, from made-up data."""

from __future__ import annotations

import io
import json
from pathlib import Path

from firmware_sim.drill_checks import Check
from firmware_sim.drill_plot import write_plot
from firmware_sim.drill_progress import StateBars, render
from firmware_sim.drill_report import (
    Sample,
    TimelineEvent,
    build_report,
    device_entry,
    facts_from_timeline,
    summary_lines,
    timings,
)

TIMELINE: list[TimelineEvent] = [
    (0.5, "power_on", {"version": 1}),
    (0.6, "connected", {"version": 1, "status": "ok"}),
    (1.0, "offer", {"version": 2, "size": 1000}),
    (1.0, "accept", {"version": 2, "offset": 0}),
    (1.2, "drop", {"version": 2, "offset": 500}),
    (1.5, "connected", {"version": 1, "status": "ok"}),
    (1.6, "offer", {"version": 2, "size": 1000}),
    (1.6, "accept", {"version": 2, "offset": 512}),
    (1.8, "complete", {"version": 2, "status": "verified"}),
    (1.9, "reboot", {"into": 2, "booted": 2}),
    (2.0, "connected", {"version": 2, "status": "ok"}),
]


def test_facts_and_timings_come_from_the_timeline() -> None:
    facts = facts_from_timeline("a" * 24, "drop", False, 2, "ok", {2: 1012}, TIMELINE)
    assert facts.accept_offsets == [(2, 0), (2, 512)]
    assert facts.completions == [(2, "verified")] and facts.drops == 1 and facts.connected
    assert timings(TIMELINE, 2) == {"connected_s": 0.6, "offered_s": 1.0, "verified_s": 1.8, "running_new_s": 2.0}
    assert timings([], 2) == dict.fromkeys(("connected_s", "offered_s", "verified_s", "running_new_s"))


def report() -> dict[str, object]:
    facts = facts_from_timeline("a" * 24, "drop", False, 2, "ok", {2: 1012}, TIMELINE)
    server = {"id": "a" * 24, "state": "confirmed", "reason": "running version 2"}
    entry = device_entry(facts, server, TIMELINE, connects=3, new=2, problem=None)
    series = [Sample(0.8, "running", {"pending": 1}), Sample(2.1, "completed", {"confirmed": 1})]
    rollout = {"state": "completed", "state_reason": "1 confirmed", "counts": {"confirmed": 1}}
    checks = [Check("rollout final state", True, "completed"), Check("devices: drop", True, "1/1")]
    return build_report({"devices": 1}, rollout, [entry], series, [1.3], checks, 2.5, 0.8)


def test_the_report_is_json_with_outcomes_series_and_checks() -> None:
    data = json.loads(json.dumps(report()))
    assert data["passed"] is True and data["outcomes"] == {"drop": {"confirmed": 1}}
    assert data["series"][1] == {"t": 2.1, "state": "completed", "counts": {"confirmed": 1}}
    device = data["devices"][0]
    assert device["bytes_received"] == {"2": 1012} and device["accept_offsets"] == [[2, 0], [2, 512]]
    assert device["timeline"][-1] == [2.0, "connected", {"version": 2, "status": "ok"}]


def test_the_summary_names_the_end_state_each_check_and_the_verdict() -> None:
    lines = summary_lines(report())
    assert lines[0].startswith("drill: 1 devices, rollout completed (1 confirmed) in 2.5 s, server restarted at 1.3 s")
    assert "ok   devices: drop: 1/1" in lines and lines[-1] == "drill passed"
    failing = report()
    failing["passed"] = False
    assert summary_lines(failing)[-1] == "drill FAILED"


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    out = tmp_path / "drill.png"
    series = [Sample(t / 4, "running", {"pending": 10 - t, "confirmed": t}) for t in range(11)]
    write_plot(out, series, "a drill", restarts=[1.0], started=0.0)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    write_plot(tmp_path / "empty.png", [], "nothing sampled")
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_bars_draw_one_line_per_state_and_redraw_in_place() -> None:
    lines = render(10, {"confirmed": 5}, "rollout 1")
    assert lines[0] == "rollout 1" and len(lines) == 9
    assert lines[5] == "  confirmed   [" + "#" * 15 + "." * 15 + "]      5/10"
    out = io.StringIO()
    bars = StateBars(10, enabled=True, out=out)
    bars.update({"pending": 10}, "first", force=True)
    bars.update({"confirmed": 10}, "second", force=True)
    assert out.getvalue().count("\x1b[9F") == 1  # the second frame moved back over the first
    quiet = io.StringIO()
    StateBars(10, enabled=False, out=quiet).update({}, "x", force=True)
    assert quiet.getvalue() == ""
