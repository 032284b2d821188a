"""A tiny real run of the harness: a `fleetgate serve` subprocess, one load worker, a few lean
devices connecting and publishing. Checks counts and that figures exist, never their values."""

from __future__ import annotations

import pytest

from firmware_sim.bench.harness import LoadSettings, open_bench
from firmware_sim.bench.machine import plan_pinning
from firmware_sim.bench.scenarios import connect_once


@pytest.mark.trio
async def test_a_few_devices_connect_and_are_privileged() -> None:
    import trio

    def run() -> dict[str, object]:
        settings = LoadSettings(workers=1, sources=2, timeout=30.0, log_level="warning")
        with open_bench(5, plan_pinning(False), settings) as bench:
            row = connect_once(bench, 5, None, None)
            bench.disconnect_all()
            return row

    row = await trio.to_thread.run_sync(run)
    assert row["privileged"] == 5 and row["failures"] == 0
    assert row["server_cpu_per_conn_us"] is not None and row["latency_p99_ms"] is not None
