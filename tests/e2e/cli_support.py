"""Running the real commands as subprocesses: a server started the way a user starts it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLEETGATE = [sys.executable, "-m", "server.cli"]
FLEETSIM = [sys.executable, "-m", "firmware_sim.cli"]


def run(cmd: list[str], *args: str | Path | int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=120)


@dataclass
class Served:
    data: Path
    port: int
    api: str
    proc: subprocess.Popen[str]
    banner: str

    def cli(self, *args: str | Path | int) -> subprocess.CompletedProcess[str]:
        return run(FLEETGATE, *args, "--data-dir", self.data, "--api", self.api)

    def fleet(self, ids: Path, *args: str | Path | int) -> dict[str, Any]:
        result = run(
            FLEETSIM, "run", "--server", f"127.0.0.1:{self.port}", "--server-key", self.data / "server.pub",
            "--identities", ids, "--json", *args,
        )  # fmt: skip
        report: dict[str, Any] = json.loads(result.stdout)
        return report


def start_server(data: Path, *extra: str) -> Served:
    proc = subprocess.Popen(
        [*FLEETGATE, "serve", "--data-dir", str(data), "--device-port", "0", "--api-port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    banner = "".join(lines)
    port = re.search(r"devices connect to 127\.0\.0\.1:(\d+)", banner)
    api = re.search(r"API at (http://127\.0\.0\.1:\d+)", banner)
    assert port and api, banner
    return Served(data, int(port.group(1)), api.group(1), proc, banner)


@contextmanager
def serving(data: Path, *extra: str) -> Iterator[Served]:
    """A `fleetgate serve` process for one test, killed afterwards if it still runs."""
    server = start_server(data, *extra)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate(timeout=10)


def stop(served: Served) -> tuple[str, str]:
    served.proc.send_signal(signal.SIGINT)
    out, err = served.proc.communicate(timeout=15)
    assert served.proc.returncode == 0, err
    return out, err
