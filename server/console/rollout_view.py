"""A rollout as the console draws it: one stacked bar for the whole and one per stage, in the
order failed, confirmed, in progress, skipped, pending, with the error threshold marked where
the failed part would fire the error action. Widths are percentages for SVG rects (the page's
CSP allows no inline styles)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.models_rollouts import RolloutOut
from ..rollouts.planner import failure_limit
from ..rules.rollout_model import Rollout, Strategy

# (label, CSS class, the device states it sums)
CATEGORIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("failed", "failed", ("failed",)),
    ("confirmed", "confirmed", ("confirmed", "rolled_back")),
    ("in progress", "progress", ("offered", "downloading", "installed")),
    ("skipped", "skipped", ("skipped",)),
    ("pending", "pending", ("pending",)),
)


@dataclass(frozen=True, slots=True)
class Segment:
    label: str
    css: str
    count: int
    x: float  # percent from the left
    width: float  # percent


@dataclass(frozen=True, slots=True)
class Bar:
    title: str
    total: int
    segments: list[Segment] = field(default_factory=list)
    mark: float | None = None  # percent: the error threshold
    mark_label: str = ""

    @property
    def summary(self) -> str:
        """The bar in words (its accessible name, and what a screen shows without SVG)."""
        parts = ", ".join(f"{s.count} {s.label}" for s in self.segments if s.count)
        return f"{self.title}: {parts or 'no devices'} of {self.total}"

    def count(self, label: str) -> int:
        return next((s.count for s in self.segments if s.label == label), 0)


def bar(title: str, counts: dict[str, int], total: int, limit: int | None = None) -> Bar:
    segments: list[Segment] = []
    x = 0.0
    for label, css, states in CATEGORIES:
        n = sum(counts.get(s, 0) for s in states)
        width = 100.0 * n / total if total else 0.0
        segments.append(Segment(label, css, n, round(x, 3), round(width, 3)))
        x += width
    mark = None if limit is None or not total else round(min(100.0, 100.0 * limit / total), 3)
    label = "" if limit is None else f"error threshold: {limit} failed device(s) fire the error action"
    return Bar(title, total, segments, mark, label)


def opened(rollout: Rollout, out: RolloutOut) -> int:
    """The devices the rollout has opened to: the denominator of its error threshold."""
    if rollout.settings.strategy is Strategy.EXPONENTIAL:
        return out.target.devices - out.counts.get("pending", 0)
    return out.stages[min(out.current_stage, len(out.stages) - 1)] if out.stages else 0


def bars(rollout: Rollout, out: RolloutOut) -> tuple[Bar, list[Bar]]:
    """The whole rollout's bar (with its threshold mark) and one per stage."""
    limit = failure_limit(rollout, opened(rollout, out))
    whole = bar("All devices", out.counts, out.target.devices, limit if not out.finished_at else None)
    stages = [
        bar(f"Stage {s.stage + 1}{' (open)' if s.stage <= out.current_stage else ''}", s.counts, s.size)
        for s in out.stage_counts
    ]
    return whole, stages
