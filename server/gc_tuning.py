"""Garbage-collector settings for a process that holds tens of thousands of connections."""

from __future__ import annotations

import gc

# CPython's default (700) runs a young collection every 700 net allocations; a handshake
# allocates thousands of short-lived objects, so a connect storm spent ~20 % of its server CPU
# in collections that find almost nothing (docs/BENCHMARKS.md). Connections still form cycles
# (a session and its tasks), so collection stays on, just less often.
YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 50
OLD_THRESHOLD = 1_000


def tune_for_serving() -> None:
    """Call once the server has started: what startup built lives as long as the process, so it
    is frozen out of every later collection, and young collections become rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
