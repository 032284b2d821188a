"""Live bars on stderr, one per rollout state (off when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

WIDTH = 30
STATES = ("pending", "offered", "downloading", "installed", "confirmed", "failed", "skipped", "rolled_back")


def render(total: int, counts: Mapping[str, int], headline: str) -> list[str]:
    """The lines of one frame: a headline, then a bar per state."""
    lines = [headline]
    for state in STATES:
        n = counts.get(state, 0)
        filled = WIDTH * n // max(1, total)
        lines.append(f"  {state:<12}[{'#' * filled}{'.' * (WIDTH - filled)}] {n:>6}/{total}")
    return lines


class StateBars:
    def __init__(self, total: int, *, enabled: bool, out: TextIO = sys.stderr) -> None:
        self.total, self.enabled, self.out = total, enabled, out
        self._drawn = 0  # lines of the last frame, to move back over
        self._last = 0.0

    def update(self, counts: Mapping[str, int], headline: str, force: bool = False) -> None:
        if not self.enabled or (not force and time.monotonic() - self._last < 0.2):
            return
        self._last = time.monotonic()
        lines = render(self.total, counts, headline)
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    def message(self, text: str) -> None:
        """A line above the bars (they are redrawn below it next time)."""
        if self.enabled:
            self.out.write(text + "\n")
            self.out.flush()
            self._drawn = 0
