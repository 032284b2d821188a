"""A tiny real run of `fleetsim bench cluster`: all three configurations (1 x SQLite, 1 x
PostgreSQL, 3 x PostgreSQL), real `fleetgate serve` processes, load workers and simulated devices
over loopback. Checks the report's shape and that the figures are there and positive, never their
values. Needs FLEETGATE_TEST_DATABASE_URL (tests/cluster_pg.py: skipped without it, failed in CI)."""

from __future__ import annotations

from typing import Any

import pytest

from firmware_sim.bench.cli import build_parser, run
from firmware_sim.bench.cluster_report import render
from tests.cluster_pg import admin_url

pytestmark = pytest.mark.postgres

TINY = ["--storm", "12", "--hold", "15", "--cluster-hold", "24", "--kill-hold", "18", "--publishers", "6",
        "--duration", "1", "--probes", "3", "--hold-window", "0.5", "--workers", "2", "--no-pin",
        "--server-log-level", "warning"]  # fmt: skip


def _positive(summary: dict[str, Any]) -> bool:
    return all(summary[k] is not None and summary[k] > 0 for k in ("p50_ms", "p90_ms", "p99_ms"))


def test_the_three_configurations_report_every_figure() -> None:
    argv = ["cluster", "--server-database", admin_url(), *TINY]
    result = run(build_parser().parse_args(argv), argv)

    rows = result["rows"]
    assert [(r["nodes"], r["store"]) for r in rows] == [(1, "sqlite"), (1, "postgresql"), (3, "postgresql")]
    for r in rows:
        held = 24 if r["nodes"] == 3 else 15
        assert r["hold"]["privileged"] == held and r["hold"]["grow_failures"] == r["hold"]["retried"] == 0
        assert sum(r["hold"]["per_node"].values()) == held and len(r["hold"]["per_node"]) == r["nodes"]
        assert r["storm"]["privileged"] == 12 and r["storm"]["failures"] == 0
        assert r["storm"]["server_cpu_per_conn_us"] > 0 and r["storm"]["handshakes_per_s"] > 0
        assert r["publish"]["accepted"] > 0 and r["publish"]["delivered"] == r["publish"]["accepted"]
        assert r["publish"]["server_cpu_per_event_us"] > 0
        latency = r["latency"]
        assert latency["cross_node"] is (r["nodes"] > 1) and latency["failures"] == {}
        for figure in ("approve_ms", "publish_to_stream_ms", "takeover_ms"):
            assert _positive(latency[figure]), (r["configuration"], figure, latency[figure])
    cluster = rows[2]
    assert cluster["hold"]["store_sessions_per_node"] == {"n1": 8, "n2": 8, "n3": 8}
    failover = cluster["failover"]
    assert failover["leader_failover_ms"] > 0 and failover["new_leader"] not in (None, failover["killed"])
    assert failover["trimmed_before"] == 6 and failover["held_at_kill"] == 18  # cut to what two survivors hold
    # about a third of them: the cut keeps each worker's first devices, not the same count per node
    assert 0 < failover["devices_on_killed_node"] == failover["reconnecting"] == failover["back"] < 18
    assert failover["failed"] == 0
    assert failover["all_back_s"] > 0
    assert "failover" not in rows[0] and "failover" not in rows[1]

    text = render(result)
    for label in ("1 x SQLite", "1 x PostgreSQL", "3 x PostgreSQL", "kill -9 of the leader", "devices held"):
        assert label in text
