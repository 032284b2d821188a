"""The benchmark harness's own pure parts: percentiles, sizes, tables, targets, MQTT codec,
kernel counters, profile summaries. No server, no timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.bench import mqtt, report, stats, targets
from firmware_sim.bench.cli import _settings, build_parser
from firmware_sim.bench.harness import bottleneck_note
from firmware_sim.bench.machine import counter_delta, cpu_seconds, kernel_counters, rss_kib
from firmware_sim.bench.profile import summarize
from firmware_sim.bench.server import serve_command


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 50) == 50.0
    assert stats.percentile(values, 99) == 99.0
    assert stats.percentile(values, 100) == 100.0
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert stats.percentile([], 50) is None
    with pytest.raises(ValueError):
        stats.percentile(values, 101)


def test_latency_summary_in_milliseconds() -> None:
    assert stats.latency_summary([0.001, 0.002, 0.010]) == {"p50_ms": 2.0, "p99_ms": 10.0, "max_ms": 10.0}
    assert stats.latency_summary([]) == {"p50_ms": None, "p99_ms": None, "max_ms": None}


def test_rates_costs_and_shares() -> None:
    assert stats.rate(100, 2.0) == 50.0
    assert stats.rate(1, 0) is None
    assert stats.per_op_us(0.3, 1000) == pytest.approx(300.0)
    assert stats.per_op_us(1.0, 0) is None
    assert stats.busy_share(1.0, 2.0) == 0.5
    assert stats.busy_share(1.0, 1.0, cores=2) == 0.5
    assert stats.ratio(2.0, 4.0) == 0.5
    # 1 s idle, then 3 s saturated (on two cores: 6 CPU s), then 1 s at half a core.
    readings = [(0.0, 0.0), (1.0, 0.0), (4.0, 6.0), (5.0, 7.0)]
    assert stats.saturated_share(readings, cores=2) == pytest.approx(0.6)
    assert stats.saturated_share(readings, cores=1) == pytest.approx(0.8)  # then 1.0 of one core too
    assert stats.saturated_share([(0.0, 0.0)]) is None and stats.saturated_share([(1.0, 0.0), (1.0, 5.0)]) is None
    assert stats.ratio(1.0, 0.0) is None


def test_split_evenly_and_sizes() -> None:
    assert stats.split_evenly(10, 4) == [3, 3, 2, 2]
    assert sum(stats.split_evenly(19_000, 4)) == 19_000
    assert stats.parse_sizes("1k, 5k,10000,1.5k") == [1000, 5000, 10000, 1500]
    for bad in ("", "0", "x", "1.5", "-3"):
        with pytest.raises(ValueError):
            stats.parse_sizes(bad)
    assert stats.count_by(["b", "a", "b"]) == {"b": 2, "a": 1}


def test_table_is_markdown_with_a_rule() -> None:
    text = report.table([{"a": 1234.5, "b": None}, {"a": 0.5, "b": "x"}], [("a", "A"), ("b", "B")])
    lines = text.splitlines()
    assert lines[0].startswith("| A") and set(lines[1]) <= {"|", "-"}
    assert "1,234" in lines[2] and lines[2].rstrip().endswith("- |")
    assert report.cell(True) == "yes" and report.cell(12345) == "12,345"


def test_target_lines() -> None:
    assert report.target_line("cpu", 250.0, 300.0, "us", False).endswith("met")
    assert report.target_line("cpu", 350.0, 300.0, "us", False).endswith("MISSED")
    assert "not measured" in report.target_line("rate", None, 1.0, "/s", True)
    rows = [{"devices": 10_000, "mode": "storm", "server_cpu_per_conn_us": 280.0, "failures": 0,
             "last_privileged_s": 4.5}]  # fmt: skip
    lines = targets.check("connect", {"rows": rows})
    assert all(line.endswith("met") for line in lines) and len(lines) == 2
    peers = [
        {"server": "fleetgate", "cpu_per_conn_us": 500.0, "messages_per_s": 10_000.0},
        {"server": "mosquitto", "cpu_per_conn_us": 400.0, "messages_per_s": 30_000.0},
        {"server": "amqtt", "cpu_per_conn_us": 900.0, "messages_per_s": 1_000.0},
    ]
    verdicts = [line.rsplit(" ", 1)[1] for line in targets.check("peers", {"rows": peers})]
    assert verdicts == ["MISSED", "MISSED", "met"]


def test_mqtt_codec_round_trip() -> None:
    decoder = mqtt.Decoder()
    wire = mqtt.publish("bench/e", b"x" * 200, 1, 7) + mqtt.connect("c1") + mqtt.subscribe(3, "bench/#", 0)
    packets = [p for i in range(len(wire)) for p in decoder.feed(wire[i : i + 1])]  # one byte at a time
    assert [kind for kind, _, _ in packets] == [mqtt.PUBLISH, mqtt.CONNECT, mqtt.SUBSCRIBE]
    _, flags, body = packets[0]
    assert mqtt.publish_payload(body, flags) == (7, b"x" * 200)
    assert mqtt.packet(mqtt.PUBACK, 0, b"\x00\x07") == b"\x40\x02\x00\x07"
    assert len(list(decoder.feed(mqtt.publish("t", b"y" * 20_000, 0)))) == 1  # a 3-byte remaining length


def test_proc_readings_of_this_process() -> None:
    import os

    assert cpu_seconds(os.getpid()) > 0
    assert rss_kib(os.getpid()) > 1000
    before = kernel_counters()
    assert counter_delta(before, before) == {}


def test_profile_summary_counts_busy_frames_only() -> None:
    lines = [
        "thread (1): MainThread;run (trio/_core/_run.py:10);epoll (x.py:1) 50",
        "thread (1): MainThread;run (trio/_core/_run.py:10);dh (protocol/noise.py:58) 30",
        "thread (1): MainThread;run (trio/_core/_run.py:11);dh (protocol/noise.py:59) 10",
    ]
    text = summarize(lines)
    assert "busy samples: 40" in text
    assert "100.0%  dh (protocol/noise.py)" in text


def test_the_bottleneck_note_names_the_side_that_was_saturated() -> None:
    def note(server: float, server_sat: float, load: float, load_sat: float) -> str | None:
        busy = {"server_busy": server, "server_saturated": server_sat, "load_busy": load, "load_saturated": load_sat}
        return bottleneck_note(busy, "connect 5000 storm")

    assert note(0.9, 0.5, 0.2, 0.0) is None  # the server's figure: it was busy
    assert note(0.8, 0.8, 0.5, 0.1) is None  # saturated most of the time, despite its ramp
    assert "the load, not the server" in (note(0.5, 0.1, 0.9, 0.9) or "")
    assert "by turns: the server was saturated 70%" in (note(0.8, 0.7, 0.5, 0.2) or "")
    assert "neither side was saturated" in (note(0.4, 0.1, 0.3, 0.1) or "")
    assert bottleneck_note({"server_busy": None, "load_busy": 0.5}, "x") is None


def test_the_server_command_passes_the_accept_limit_only_when_asked() -> None:
    plain = serve_command(Path("d"), 1, 2, "info", None)
    assert "--max-handshakes" not in plain and "--publish-rate" not in plain
    limited = serve_command(Path("d"), 1, 2, "info", 1e6, max_handshakes=512)
    assert limited[-2:] == ["--max-handshakes", "512"] and "--publish-rate" in limited
    args = build_parser().parse_args(["connect", "--devices", "5k", "--server-max-handshakes", "512"])
    assert _settings(args).max_handshakes == 512
    assert _settings(build_parser().parse_args(["connect"])).max_handshakes is None
