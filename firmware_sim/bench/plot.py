"""Scaling plots as PNG (matplotlib's Agg canvas, no pyplot, as firmware_sim/drill_plot.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .targets import CPU_PER_CONN_US, EVENTS_PER_S, OTA_MB_PER_S, RSS_PER_CONN_KIB

BLUE, ORANGE, GREEN, RED, GREY = "#2f80ed", "#f2994a", "#27ae60", "#eb5757", "#777777"


def _xy(rows: list[dict[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
    pts = [(float(r[x]), float(r[y])) for r in rows if r.get(x) is not None and r.get(y) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _target(ax: Axes, value: float, label: str) -> None:
    ax.axhline(value, color=RED, linestyle="--", linewidth=1, label=label)


def write_plot(path: Path, result: dict[str, Any]) -> None:
    scenario, rows = str(result["scenario"]), list(result["rows"])
    fig = Figure(figsize=(9, 5.2), dpi=100)
    FigureCanvasAgg(fig)
    m = result["machine"]
    subtitle = f"commit {m['commit']}{'+' if m['uncommitted_changes'] else ''}, {m['cores']} cores {m['cpu_model']}, " \
        f"Python {m['python']}; {result['pinning']['note']}"  # fmt: skip
    if scenario == "peers":
        _peers(fig, rows)
    else:
        ax = fig.subplots()
        twin = ax.twinx()
        if scenario == "connect":
            ax.plot(
                *_xy(rows, "devices", "server_cpu_per_conn_us"), "o-", color=BLUE, label="server CPU per connection"
            )
            _target(ax, CPU_PER_CONN_US, f"target {CPU_PER_CONN_US:g} us")
            ax.set_ylabel("server CPU µs per authenticated connection")
            twin.plot(*_xy(rows, "devices", "handshakes_per_s"), "s--", color=ORANGE, label="handshakes/s")
            twin.set_ylabel("handshakes per second (wall clock)")
            ax.set_xlabel("devices connecting at once")
            title = "Connect: CPU per handshake vs concurrency"
        elif scenario == "hold":
            ax.plot(*_xy(rows, "devices", "rss_per_conn_kib"), "o-", color=BLUE, label="RSS per connection")
            _target(ax, RSS_PER_CONN_KIB, f"target {RSS_PER_CONN_KIB:g} KiB")
            ax.set_ylabel("server RSS KiB per connection")
            twin.plot(*_xy(rows, "devices", "cpu_per_idle_conn_per_min_us"), "s--", color=ORANGE,
                      label="CPU per idle connection per minute")  # fmt: skip
            twin.set_ylabel("server CPU µs per idle connection per minute")
            ax.set_xlabel("idle authenticated connections")
            title = "Hold: RSS vs connections"
        elif scenario == "publish":
            for key, colour, label in (("accepted_per_s", BLUE, "accepted (acked)"), ("stored_per_s", GREEN, "stored"),
                                       ("delivered_per_s", ORANGE, "delivered to the subscriber")):  # fmt: skip
                ax.plot(*_xy(rows, "publishers", key), "o-", color=colour, label=label)
            _target(ax, EVENTS_PER_S, f"target {EVENTS_PER_S:,.0f}/s")
            ax.set_ylabel("events per second")
            ax.set_xscale("log")
            twin.plot(*_xy(rows, "publishers", "server_cpu_per_event_us"), "s:", color=GREY, label="CPU µs/event")
            twin.set_ylabel("server CPU µs per event")
            ax.set_xlabel("publishing devices")
            title = "Publish: events/s vs publishers"
        else:
            ax.plot(*_xy(rows, "devices", "aggregate_mb_per_s"), "o-", color=BLUE, label="aggregate MB/s")
            _target(ax, OTA_MB_PER_S, "target 1 GB/s")
            ax.set_ylabel("MB/s delivered (10^6 bytes)")
            twin.plot(*_xy(rows, "devices", "server_cpu_per_mb_ms"), "s--", color=ORANGE, label="CPU ms/MB")
            twin.set_ylabel("server CPU ms per MB")
            ax.set_xlabel("devices updating at once")
            title = "OTA: aggregate throughput vs devices"
        ax.set_ylim(bottom=0)
        twin.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize="small", loc="best")
        ax.set_title(title)
    fig.suptitle(subtitle, fontsize="x-small", y=0.995)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def _peers(fig: Figure, rows: list[dict[str, Any]]) -> None:
    axes = fig.subplots(1, 4)
    names = [str(r["server"]) for r in rows]
    colours = [BLUE if n == "fleetgate" else GREY for n in names]
    for ax, key, title in zip(
        axes,
        ("connects_per_s", "cpu_per_conn_us", "messages_per_s", "cpu_per_message_us"),
        ("connects/s", "CPU µs/connection", "acked msgs/s", "CPU µs/message"),
        strict=True,
    ):
        values = [float(r[key]) if r.get(key) is not None else 0.0 for r in rows]
        ax.bar(names, values, color=colours)
        ax.set_title(title, fontsize="small")
        ax.tick_params(axis="x", labelrotation=60, labelsize="small")  # four names side by side must not overlap
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
        ax.grid(True, axis="y", alpha=0.3)
