"""The Fleetgate scenarios: connect, hold, publish, ota. Each returns rows of figures."""

from __future__ import annotations

import time
from typing import Any

from .harness import Bench, Phase, bottleneck_note, kernel_note
from .machine import open_fds, rss_kib, thread_count
from .server import PRODUCT_ID
from .stats import count_by, latency_summary, per_op_us, rate, rounded
from .subscriber import Subscriber

Row = dict[str, Any]


def _load_cores(bench: Bench) -> int:
    return len(bench.pinning.load) if bench.pinning.load else 1


# ---------------------------------------------------------------------- connect


def connect_once(bench: Bench, n: int, connect_rate: float | None, concurrency: int | None) -> Row:
    """n devices connect (a storm, or `connect_rate` a second); all stay online until the end."""
    pool, settings = bench.pool, bench.settings
    prep_cpu = pool.prepare(0, n, PRODUCT_ID)
    bench.settle()
    phase = Phase(bench, f"connect-{n}").start()
    start_at = phase.wall0 + 0.2
    results = pool.connect(0, n, start_at, connect_rate, concurrency, settings.timeout, bench.sources)
    phase.stop()
    all_done = phase.cpu1  # the server's CPU when the last handshake ended
    cpu_settled = bench.settle()  # and once the confirmations it queued are written
    phase.done()
    bench.online = n
    ok = [(s, w) for s, w, e in results if not e]
    errors = [e for _, _, e in results if e]
    last = max((w for _, w in ok), default=start_at)
    span = last - start_at
    busy = phase.busy(_load_cores(bench))
    busy["server_busy"] = rounded((all_done - phase.cpu0) / span if span > 0 else None, 3)
    server_cpu = cpu_settled - phase.cpu0
    kernel = phase.kernel()
    row: Row = {
        "devices": n,
        "mode": f"{connect_rate:g}/s" if connect_rate else "storm",
        "concurrency": concurrency or n,
        "privileged": len(ok),
        "failures": len(errors),
        "failure_reasons": count_by(errors),
        "handshakes_per_s": rounded(rate(len(ok), span)),
        "all_privileged_s": round(span, 3) if not errors else None,
        "last_privileged_s": round(span, 3),
        **{f"latency_{k}": v for k, v in latency_summary([w - s for s, w in ok]).items()},
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_per_conn_us": rounded(per_op_us(server_cpu, len(ok))),
        "server_kernel_share": phase.system_share(),
        "load_cpu_per_conn_us": rounded(per_op_us(phase.load_cpu, len(ok))),
        "device_prepare_cpu_s": round(prep_cpu, 3),
        **busy,
        "server_rss_kib": rss_kib(bench.server.pid),
        "kernel": kernel,
    }
    for note in (bottleneck_note(busy, f"connect {n} {row['mode']}"), kernel_note(kernel, f"connect {n}")):
        if note:
            bench.note(note)
    return row


def run_connect(bench: Bench, sizes: list[int], connect_rate: float | None, concurrency: int | None) -> list[Row]:
    rows = []
    for n in sizes:
        rows.append(connect_once(bench, n, connect_rate, concurrency))
        keys = ("devices", "mode", "privileged", "failures", "handshakes_per_s", "last_privileged_s",
                "server_cpu_per_conn_us", "server_busy", "load_busy")  # fmt: skip
        _print_progress(rows[-1], keys)
        bench.disconnect_all()
    return rows


# ---------------------------------------------------------------------- hold


def run_hold(bench: Bench, sizes: list[int], window: float) -> list[Row]:
    """Grow the idle fleet step by step; at each step, RSS and the CPU over `window` seconds."""
    rows: list[Row] = []
    pid = bench.server.pid
    bench.settle()
    base_rss = rss_kib(pid)
    prev_n, prev_rss = 0, base_rss
    for n in sorted(sizes):
        bench.grow(n)
        bench.settle()
        rss = rss_kib(pid)
        phase = Phase(bench, f"hold-{n}").start()
        time.sleep(window)
        phase.stop()
        phase.done()
        minutes = phase.wall / 60
        row: Row = {
            "devices": n,
            "online": bench.online,
            "server_rss_kib": rss,
            "baseline_rss_kib": base_rss,
            "rss_per_conn_kib": round((rss - base_rss) / n, 2),
            "marginal_rss_per_conn_kib": round((rss - prev_rss) / (n - prev_n), 2) if n > prev_n else None,
            "window_s": round(phase.wall, 1),
            "server_cpu_s": round(phase.server_cpu, 3),
            "cpu_per_idle_conn_per_min_us": rounded(per_op_us(phase.server_cpu / minutes, n), 2),
            "server_busy": rounded(phase.server_cpu / phase.wall, 4),
            "server_threads": thread_count(pid),
            "server_fds": open_fds(pid),
        }
        rows.append(row)
        _print_progress(row, ("devices", "server_rss_kib", "rss_per_conn_kib", "marginal_rss_per_conn_kib",
                              "cpu_per_idle_conn_per_min_us"))  # fmt: skip
        prev_n, prev_rss = n, rss
    bench.disconnect_all()
    return rows


# ---------------------------------------------------------------------- publish


def run_publish(
    bench: Bench, publishers: list[int], duration: float, window: int, payload: int, subscriber: Subscriber
) -> list[Row]:
    rows: list[Row] = []
    for m in sorted(publishers):
        bench.grow(m)
        row = publish_step(bench, m, duration, window, payload, subscriber)
        rows.append(row)
        keys = ("publishers", "accepted_per_s", "stored_per_s", "delivered_per_s", "ack_p99_ms", "e2e_p50_ms",
                "e2e_p99_ms", "server_cpu_per_event_us", "server_busy", "load_busy")  # fmt: skip
        _print_progress(row, keys)
    bench.disconnect_all()
    return rows


def publish_step(
    bench: Bench, m: int, duration: float, window: int, payload: int, subscriber: Subscriber, messages: int = 0
) -> Row:
    """The first m online devices publish for `duration` seconds (or `messages` each), acked."""
    pool = bench.pool
    bench.settle()
    subscriber.reset()
    stored0 = bench.server.stored_events()
    phase = Phase(bench, f"publish-{m}").start()
    start_at = phase.wall0 + 0.2
    answers = pool.call(
        "publish",
        [dict(count=c, start_at=start_at, duration=duration, window=window, payload=payload, drain=15.0,
              messages=messages) for c in pool.share(m)],
    )  # fmt: skip
    accepted = sum(int(a["accepted"]) for a in answers)
    delivered = subscriber.wait(accepted, timeout=20.0)
    phase.stop()
    cpu_settled = bench.settle()
    phase.done()
    stored = bench.server.stored_events() - stored0
    last_ack = max(float(a["last_ack"]) for a in answers)
    span = max(1e-9, last_ack - start_at)
    ack_lat = [x for a in answers for x in a["ack_latencies"]]
    busy = phase.busy(_load_cores(bench))
    server_cpu = cpu_settled - phase.cpu0
    row: Row = {
        "publishers": m,
        "window": window,
        "payload_bytes": payload,
        "duration_s": round(span, 2),
        "sent": sum(int(a["sent"]) for a in answers),
        "accepted": accepted,
        "slowed": sum(int(a["slowed"]) for a in answers),
        "unacked": sum(int(a["unacked"]) for a in answers),
        "stored": stored,
        "delivered": delivered["count"],
        "accepted_per_s": rounded(rate(accepted, span)),
        "stored_per_s": rounded(rate(stored, span)),
        "delivered_per_s": rounded(rate(delivered["count"], max(span, delivered["last_at"] - start_at))),
        **{f"ack_{k}": v for k, v in latency_summary(ack_lat).items()},
        **{f"e2e_{k}": v for k, v in latency_summary(delivered["latencies"]).items()},
        "subscriber_cut_offs": delivered["cut_offs"],
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_per_event_us": rounded(per_op_us(server_cpu, accepted)),
        "server_kernel_share": phase.system_share(),
        **busy,
        "devices_closed": sum(int(a["closed_count"]) for a in answers),
    }
    note = bottleneck_note(busy, f"publish {m} publishers")
    if note:
        bench.note(note)
    if row["devices_closed"]:
        bench.note(f"publish {m}: {row['devices_closed']} devices lost their link: {answers[0]['closed'][:2]}")
    return row


# ---------------------------------------------------------------------- ota


def run_ota(bench: Bench, counts: list[int], size: int, timeout: float) -> list[Row]:
    """For each K: K devices online on version 1; a new version is released; all take it at once."""
    rows: list[Row] = []
    pool, server = bench.pool, bench.server
    version = 2
    for k in sorted(counts):
        bench.grow(k)
        server.upload_firmware(version, size)
        bench.settle()
        pool.broadcast("ota_reset")
        phase = Phase(bench, f"ota-{k}").start()
        server.release(version)
        answers = pool.call("ota_wait", [dict(expect=c, limit=timeout) for c in pool.share(k)])
        phase.stop()
        cpu_settled = bench.settle()
        phase.done()
        transfers = [t for a in answers for t in a["transfers"] if t["version"] == version]
        done = [t for t in transfers if t["status"] == "verified"]
        received = sum(int(t["received"]) for t in transfers)
        durations = [float(t["done_at"]) - float(t["offered_at"]) for t in done]
        last = max((float(t["done_at"]) for t in transfers), default=phase.wall1)
        span = max(1e-9, last - phase.wall0)
        server_cpu = cpu_settled - phase.cpu0
        busy = phase.busy(_load_cores(bench))
        row: Row = {
            "devices": k,
            "image_bytes": size,
            "verified": len(done),
            "failed": k - len(done),
            "statuses": count_by(str(t["status"]) for t in transfers),
            "bytes_delivered": received,
            "seconds": round(span, 3),
            "aggregate_mb_per_s": rounded(rate(received / 1e6, span)),
            **{f"transfer_{k2}": v for k2, v in latency_summary(durations).items()},
            "server_cpu_s": round(server_cpu, 3),
            "server_cpu_per_mb_ms": rounded(server_cpu / (received / 1e6) * 1000 if received else None, 3),
            "server_kernel_share": phase.system_share(),
            **busy,
        }
        rows.append(row)
        _print_progress(row, ("devices", "verified", "aggregate_mb_per_s", "server_cpu_per_mb_ms", "server_busy",
                              "load_busy"))  # fmt: skip
        note = bottleneck_note(busy, f"ota {k} devices")
        if note:
            bench.note(note)
        version += 1
    bench.disconnect_all()
    return rows


def _print_progress(row: Row, keys: tuple[str, ...]) -> None:
    print("  " + ", ".join(f"{k}={row.get(k)}" for k in keys), flush=True)
