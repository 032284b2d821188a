"""What the figures are measured on and with: process accounting from /proc, the machine, the
commit, the pinning, and the kernel's own counters of dropped connections (Linux only)."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
REPO = Path(__file__).resolve().parents[2]


def cpu_times(pid: int) -> tuple[float, float]:
    """The process's own CPU accounting (utime, stime of all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime, in seconds."""
    user, system = cpu_times(pid)
    return user + system


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def fd_limit() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True, slots=True)
class Pinning:
    """Which cores the server and the load run on (None: not pinned; the scheduler decides)."""

    server: frozenset[int] | None
    load: frozenset[int] | None
    note: str

    def as_json(self) -> dict[str, object]:
        return {
            "server_cores": sorted(self.server) if self.server is not None else None,
            "load_cores": sorted(self.load) if self.load is not None else None,
            "note": self.note,
        }


def plan_pinning(enabled: bool = True) -> Pinning:
    """Server on the first core we may use, load on the others, when there are two or more."""
    if not enabled:
        return Pinning(None, None, "not pinned (--no-pin)")
    if not hasattr(os, "sched_getaffinity"):
        return Pinning(None, None, "not pinned: no sched_setaffinity on this platform")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return Pinning(None, None, f"not pinned: only core {cores} available")
    server, load = frozenset(cores[:1]), frozenset(cores[1:])
    return Pinning(server, load, f"server on core {cores[0]}, load (workers, subscriber, this process) on {cores[1:]}")


def pin(cores: frozenset[int] | None, pid: int = 0) -> None:
    if cores is not None:
        os.sched_setaffinity(pid, cores)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine_facts(argv: list[str] | None = None) -> dict[str, object]:
    """What every figure is reported with: commit, machine, Python, and the exact command."""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    args = sys.argv[1:] if argv is None else argv
    return {
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        "uncommitted_changes": bool(dirty),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": mem_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "fd_limit": fd_limit(),
        "loadavg_at_start": loadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python -m firmware_sim.bench " + shlex.join(args),
    }


# The kernel's counters of connections it dropped (machine-wide): when these move during a run,
# a queue in the kernel, not the server's code, turned connections away.
_NETSTAT_KEYS = {
    ("TcpExt", "ListenOverflows"): "listen_overflows",
    ("TcpExt", "ListenDrops"): "listen_drops",
    ("TcpExt", "TCPReqQFullDrop"): "syn_queue_full_drops",
    ("TcpExt", "TCPReqQFullDoCookies"): "syn_cookies_sent",
    ("Tcp", "RetransSegs"): "retransmitted_segments",
    ("Tcp", "AttemptFails"): "connect_attempt_fails",
}


def kernel_counters() -> dict[str, int]:
    out: dict[str, int] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for header, values in zip(lines[::2], lines[1::2], strict=False):
            names, numbers = header.split(), values.split()
            if not names or names[0] != numbers[0]:
                continue
            prefix = names[0].rstrip(":")
            for name, number in zip(names[1:], numbers[1:], strict=False):
                key = _NETSTAT_KEYS.get((prefix, name))
                if key is not None:
                    out[key] = int(number)
    return out


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def kernel_limits() -> dict[str, object]:
    """Kernel settings that can stop a run before the server does."""
    out: dict[str, object] = {}
    for name, path in (
        ("somaxconn", "/proc/sys/net/core/somaxconn"),
        ("tcp_max_syn_backlog", "/proc/sys/net/ipv4/tcp_max_syn_backlog"),
        ("ip_local_port_range", "/proc/sys/net/ipv4/ip_local_port_range"),
        ("tcp_syncookies", "/proc/sys/net/ipv4/tcp_syncookies"),
    ):
        try:
            out[name] = " ".join(Path(path).read_text().split())
        except OSError:
            out[name] = None
    return out


class ProcessMeter:
    """CPU and RSS of one process, sampled at phase boundaries. `also`: more CPU that counts as
    this process's (the PostgreSQL backends serving it: bench/pgdb.py)."""

    def __init__(self, pid: int, also: Callable[[], float] | None = None) -> None:
        self.pid = pid
        self.also = also

    def cpu(self) -> float:
        return cpu_seconds(self.pid) + (self.also() if self.also is not None else 0.0)

    def rss(self) -> int:
        return rss_kib(self.pid)

    def settle(self, quiet_share: float = 0.05, window: float = 0.25, limit: float = 10.0) -> float:
        """Wait (blocking) until the process uses under `quiet_share` of a core over `window`
        seconds, at most `limit` seconds; the CPU reading at the end."""
        deadline = time.monotonic() + limit
        last = self.cpu()
        while True:
            time.sleep(window)
            now = self.cpu()
            if now - last <= quiet_share * window or time.monotonic() > deadline:
                return now
            last = now
