"""Printing a run: a plain-text table per scenario, the setting it ran in, and the notes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "connect": [
        ("devices", "devices"), ("mode", "mode"), ("privileged", "privileged"), ("failures", "fail"),
        ("handshakes_per_s", "handshakes/s"), ("last_privileged_s", "all privileged s"),
        ("latency_p50_ms", "p50 ms"), ("latency_p99_ms", "p99 ms"),
        ("server_cpu_per_conn_us", "server CPU us/conn"), ("server_busy", "server busy"),
        ("server_saturated", "server saturated"), ("load_busy", "load busy"),
    ],
    "hold": [
        ("devices", "devices"), ("server_rss_kib", "RSS KiB"), ("rss_per_conn_kib", "KiB/conn"),
        ("marginal_rss_per_conn_kib", "marginal KiB/conn"), ("cpu_per_idle_conn_per_min_us", "CPU us/conn/min"),
        ("window_s", "window s"), ("server_threads", "threads"),
    ],
    "publish": [
        ("publishers", "publishers"), ("accepted_per_s", "accepted/s"), ("stored_per_s", "stored/s"),
        ("delivered_per_s", "delivered/s"), ("ack_p50_ms", "ack p50 ms"), ("ack_p99_ms", "ack p99 ms"),
        ("e2e_p50_ms", "e2e p50 ms"), ("e2e_p99_ms", "e2e p99 ms"), ("server_cpu_per_event_us", "CPU us/event"),
        ("server_busy", "server busy"), ("server_saturated", "server saturated"), ("load_busy", "load busy"),
        ("subscriber_cut_offs", "cut-offs"),
    ],
    "ota": [
        ("devices", "devices"), ("image_bytes", "image bytes"), ("verified", "verified"),
        ("aggregate_mb_per_s", "MB/s"), ("seconds", "seconds"), ("transfer_p50_ms", "transfer p50 ms"),
        ("server_cpu_per_mb_ms", "server CPU ms/MB"), ("server_busy", "server busy"),
        ("server_saturated", "server saturated"), ("load_busy", "load busy"),
    ],
    "peers": [
        ("server", "server"), ("transport", "transport"), ("clients", "clients"), ("connected", "connected"),
        ("connects_per_s", "connects/s"), ("connect_p99_ms", "connect p99 ms"),
        ("cpu_per_conn_us", "CPU us/conn"), ("messages_per_s", "acked msgs/s"), ("delivered", "delivered"),
        ("ack_p99_ms", "ack p99 ms"), ("cpu_per_message_us", "CPU us/msg"), ("rss_per_conn_kib", "KiB/conn"),
        ("publish_server_busy", "server busy (publish)"), ("publish_load_busy", "load busy (publish)"),
        ("load_bound", "load-bound"),
    ],
}  # fmt: skip


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table; also valid Markdown (a header row, a rule, one line per row)."""
    header = [title for _, title in columns]
    body = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    return "\n".join(lines)


def render(result: dict[str, Any]) -> str:
    """The whole report of one run, as printed."""
    scenario = str(result["scenario"])
    m = result["machine"]
    lines = [
        f"fleetsim bench {scenario}",
        f"  commit {m['commit']}{' (with uncommitted changes)' if m['uncommitted_changes'] else ''}; "
        f"{m['cores']} cores, {m['cpu_model']}; Python {m['python']}; loadavg at start {m['loadavg_at_start']}",
        f"  pinning: {result['pinning']['note']}",
        f"  command: {m['command']}",
    ]
    server = result.get("server")
    if server:
        lines.append(f"  server: {server['command']}")
    lines.append("")
    lines.append(table(result["rows"], COLUMNS.get(scenario, [(k, k) for k in result["rows"][0]])))
    if result.get("ratios"):
        from .peer_figures import ratio_lines

        lines += ["", "ratios (Fleetgate / peer):"] + [f"  - {line}" for line in ratio_lines(result["ratios"])]
    for title, key in (("targets", "targets"), ("notes", "notes")):
        items = result.get(key) or []
        if items:
            lines += ["", f"{title}:"] + [f"  - {item}" for item in items]
    return "\n".join(lines)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")


def target_line(name: str, measured: float | None, limit: float, unit: str, higher_is_better: bool) -> str:
    """'name: measured unit (target <= limit): met' — or 'missed', or 'not measured'."""
    if measured is None:
        return f"{name}: not measured (target {'>=' if higher_is_better else '<='} {cell(limit)} {unit})"
    met = measured >= limit if higher_is_better else measured <= limit
    sign = ">=" if higher_is_better else "<="
    return f"{name}: {cell(measured)} {unit} (target {sign} {cell(limit)} {unit}): {'met' if met else 'MISSED'}"
