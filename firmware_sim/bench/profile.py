"""Sampling the server with py-spy while a scenario runs (--profile OUT.txt).

py-spy writes collapsed stacks ("frame;frame;frame count" per line, `--format raw`); from them
this module prints the hot spots: the frames with the most samples on top of the stack (self)
and anywhere in it (inclusive). Profiled runs are for finding hot spots, not for figures: the
sampler takes CPU from the load's core and briefly stops the server (without --nonblocking).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .machine import Pinning

IDLE_FRAMES = ("epoll", "select (selectors", "poll (selectors", "_wait_for_tstate_lock", "wait (threading",
               "get_events", "_run_worker", "handle_io", "_work (trio/_core/_thread_cache.py:211)")  # fmt: skip
_LINE = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """'name (file.py:123)' -> 'name (file.py)': samples of one function counted together."""
    return _LINE.sub(")", frame)


class Profiler:
    def __init__(self, pid: int, output: Path, pinning: Pinning, rate: int = 200) -> None:
        exe = shutil.which("py-spy") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "py-spy")
        if not Path(exe).exists():
            raise RuntimeError("--profile needs py-spy: pip install py-spy (not installed by the benchmark)")
        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        cmd = [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate), "-o", str(output),
               "--nonblocking", "--threads"]  # fmt: skip
        load = pinning.load

        def pin_load() -> None:
            import os

            if load is not None:
                os.sched_setaffinity(0, load)

        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin_load)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.output.exists():
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            return f"py-spy wrote no profile: {err.strip()[:500]}"
        summary = summarize(self.output.read_text().splitlines())
        summary_path = self.output.with_suffix(".summary.txt")
        summary_path.write_text(summary + "\n")
        return f"profile: {self.output} (collapsed stacks; speedscope.app opens them), hot spots: {summary_path}"


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    out: list[tuple[list[str], int]] = []
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        out.append((stack.split(";"), int(count)))
    return out


def _is_idle(frames: list[str]) -> bool:
    top = frames[-1] if frames else ""
    return any(marker in top for marker in IDLE_FRAMES)


def summarize(lines: Iterable[str], top: int = 25) -> str:
    """The hot spots of a collapsed-stack profile: self and inclusive sample shares (busy only)."""
    stacks = [(frames, n) for frames, n in parse_collapsed(lines) if frames]
    busy = [(f[1:] if f[0].startswith("thread") else f, n) for f, n in stacks]
    busy = [([_function(x) for x in f], n) for f, n in busy if f and not _is_idle(f)]
    total = sum(n for _, n in busy) or 1
    self_counts: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    for frames, n in busy:
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    lines_out = [f"busy samples: {total} (idle waits in epoll / thread waits left out)", "", "self (top of stack):"]
    for frame, n in sorted(self_counts.items(), key=lambda kv: -kv[1])[:top]:
        lines_out.append(f"  {n / total:6.1%}  {frame}")
    lines_out += ["", "inclusive (anywhere in the stack):"]
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[: top * 2]:
        lines_out.append(f"  {n / total:6.1%}  {frame}")
    return "\n".join(lines_out)
