"""A dependency-free progress bar on stderr for long fleet runs (off when not a terminal)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, unit: str, *, enabled: bool) -> None:
        self.total, self.unit, self.enabled = total, unit, enabled
        self.done = 0
        self._last_draw = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled and (time.monotonic() - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw = time.monotonic()
            width = 30
            filled = width * self.done // max(1, self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.unit}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
