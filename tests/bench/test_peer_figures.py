"""The peers report's arithmetic: busy shares read at the moment their time ends, the load-bound
flag, the ratios that carry it, and the persisted mosquitto's configuration. No broker, no timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.bench import mqtt, report
from firmware_sim.bench.peer_figures import busy_until, cpu_at, load_bound, ratio_lines, ratios
from firmware_sim.bench.peers import _mosquitto_conf


def test_cpu_at_interpolates_between_readings() -> None:
    readings = [(10.0, 1.0), (11.0, 2.0), (12.0, 2.5)]
    assert cpu_at(readings, 10.0) == 1.0
    assert cpu_at(readings, 10.5) == pytest.approx(1.5)
    assert cpu_at(readings, 11.5) == pytest.approx(2.25)
    assert cpu_at(readings, 12.0) == 2.5
    assert cpu_at(readings, 9.0) is None
    assert cpu_at(readings, 12.5) is None
    assert cpu_at([], 10.0) is None
    assert cpu_at([(5.0, 1.0), (5.0, 1.0)], 5.0) == 1.0


def test_a_saturated_broker_is_one_core_busy_even_when_its_subscriber_drains_later() -> None:
    # One core, saturated from t=0 to the last ack at t=2, then busy 0.5 s more delivering to the
    # subscriber. The old report divided the CPU read after the drain (2.5 s) by the 2 s to the
    # last ack: "busy 1.25" on one core. Read at the last ack, it is 1.0.
    readings = [(t / 10, min(t / 10, 2.5)) for t in range(0, 41)]
    assert busy_until(readings, 0.0, 0.0, 2.0) == pytest.approx(1.0)
    assert busy_until(readings, 0.0, 0.0, 5.0) is None  # no reading there: not a guess


def test_load_bound_means_load_saturated_and_the_server_well_below_a_core() -> None:
    assert load_bound(0.41, 0.995)  # mosquitto's publish in the issue
    assert not load_bound(0.95, 0.99)  # both saturated: the server's rate
    assert not load_bound(0.41, 0.6)  # neither: latency-bound, not load-bound
    assert not load_bound(None, 0.99)


def _row(server: str, rate: float, server_busy: float, load_busy: float) -> dict[str, object]:
    return {"server": server, "messages_per_s": rate, "publish_server_busy": server_busy,
            "publish_load_busy": load_busy, "connects_per_s": 500.0, "connect_server_busy": 0.9,
            "connect_load_busy": 0.5, "cpu_per_message_us": 100.0}  # fmt: skip


def test_a_rate_ratio_against_a_load_bound_peer_says_so() -> None:
    rows = [_row("fleetgate", 6000.0, 0.97, 0.7), _row("mosquitto", 15000.0, 0.41, 0.995), _row("amqtt", 4000, 1, 0.6)]
    table = ratios(rows)
    assert table["fleetgate/mosquitto"]["messages_per_s"] == "0.4 (load-bound: mosquitto)"
    assert table["fleetgate/mosquitto"]["connects_per_s"] == 1.0  # the connect phase was not load-bound
    assert table["fleetgate/mosquitto"]["cpu_per_message_us"] == 1.0  # CPU per message is no rate
    assert table["fleetgate/amqtt"]["messages_per_s"] == 1.5
    lines = ratio_lines(table)
    assert any("messages_per_s 0.4 (load-bound: mosquitto)" in line for line in lines)


def test_the_printed_peers_report_shows_the_ratios_and_the_flag() -> None:
    rows = [_row("fleetgate", 6000.0, 0.97, 0.7), _row("mosquitto", 15000.0, 0.41, 0.995)]
    rows[1]["load_bound"] = "messages"
    result = {
        "scenario": "peers",
        "machine": {"commit": "abc", "uncommitted_changes": False, "cores": 2, "cpu_model": "x", "python": "3",
                    "loadavg_at_start": "0", "command": "c"},
        "pinning": {"note": "n"},
        "rows": rows,
        "ratios": ratios(rows),
    }  # fmt: skip
    text = report.render(result)
    assert "load-bound: mosquitto" in text
    assert "load busy (publish)" in text


def test_mosquitto_persist_saves_after_every_change(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / n for n in ("ca", "cert", "key"))
    persisted = _mosquitto_conf(tmp_path, 1883, ca, cert, key, persist=True).read_text().splitlines()
    assert "persistence true" in persisted
    assert "autosave_on_changes true" in persisted
    assert "autosave_interval 1" in persisted
    assert f"persistence_location {tmp_path}/" in persisted
    assert "persistence false" not in persisted
    plain = _mosquitto_conf(tmp_path, 1883, ca, cert, key).read_text().splitlines()
    assert "persistence false" in plain
    assert "persistence true" not in plain


def test_a_retained_publish_sets_the_retain_bit() -> None:
    assert mqtt.publish("t", b"x", 1, 7, retain=True)[0] == 0x33
    assert mqtt.publish("t", b"x", 1, 7)[0] == 0x32
