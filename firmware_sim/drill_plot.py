"""The drill's picture: devices per rollout state over time, as a PNG (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .drill_report import Sample

STATES = ("pending", "offered", "downloading", "installed", "confirmed", "failed", "skipped", "rolled_back")
COLOURS = {
    "pending": "#b0b0b0",
    "offered": "#f0c419",
    "downloading": "#2f80ed",
    "installed": "#9b51e0",
    "confirmed": "#27ae60",
    "failed": "#eb5757",
    "skipped": "#6f4e37",
    "rolled_back": "#f2994a",
}


def write_plot(
    path: Path, series: Sequence[Sample], title: str, restarts: Sequence[float] = (), started: float | None = None
) -> None:
    """One line per state that ever held a device; dashed lines mark the rollout's start and restarts."""
    # A Figure on the Agg canvas, without pyplot: no display, no global figure state.
    fig = Figure(figsize=(10, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    times = [s.t for s in series]
    for state in STATES:
        values = [s.counts.get(state, 0) for s in series]
        if any(values):
            ax.plot(times, values, label=state, color=COLOURS[state], linewidth=1.8)
    if started is not None:
        ax.axvline(started, color="#333333", linestyle=":", linewidth=1, label="rollout created")
    for i, t in enumerate(restarts):
        ax.axvline(t, color="#000000", linestyle="--", linewidth=1, label="server restart" if i == 0 else None)
    ax.set_xlabel("seconds since the drill started")
    ax.set_ylabel("devices")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    if times:
        ax.legend(loc="center right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
