"""The drill's server: a real `fleetgate serve` subprocess on ports the drill picked, so a
restart on the same data directory comes back where the devices already connect."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import trio

BANNER_END = "Ctrl-C"
START_LIMIT = 30.0  # seconds for the banner to appear
STOP_LIMIT = 20.0  # seconds for a SIGINT to end the process (the server drains sessions for 5)


class ServerFailed(Exception):
    pass


def free_ports(n: int) -> list[int]:
    """n distinct loopback ports free now (held open together, so they differ)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(slots=True)
class ServerProcess:
    data_dir: Path
    device_port: int
    api_port: int
    log_path: Path
    log_level: str = "warning"  # the server log goes to log_path; info logs every OTA step
    extra_args: tuple[str, ...] = ()  # more `fleetgate serve` options (e.g. --publish-rate)
    starts: int = 0
    banner: str = ""
    _proc: trio.Process | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def public_key_path(self) -> Path:
        return self.data_dir / "server.pub"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Start `fleetgate serve` and wait for its banner (the listeners are up by then)."""
        cmd = [
            sys.executable, "-m", "server.cli", "serve", "--data-dir", str(self.data_dir),
            "--device-port", str(self.device_port), "--api-port", str(self.api_port), "--log-level", self.log_level,
            *self.extra_args,
        ]  # fmt: skip
        if self._log is None:
            self._log = self.log_path.open("ab")  # the server's JSON log lines, across restarts
        self._proc = proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE, stderr=self._log)
        assert proc.stdout is not None
        text = ""
        with trio.move_on_after(START_LIMIT):
            while BANNER_END not in text:
                chunk = await proc.stdout.receive_some(4096)
                if not chunk:
                    break
                text += chunk.decode(errors="replace")
        if BANNER_END not in text:
            await self.stop()
            raise ServerFailed(f"the server did not start: {text.strip() or 'no output'} (log: {self.log_path})")
        self.starts += 1
        self.banner = text
        api = re.search(r"API at http://127\.0\.0\.1:(\d+)", text)
        devices = re.search(r"devices connect to 127\.0\.0\.1:(\d+)", text)
        if not api or not devices or (int(devices.group(1)), int(api.group(1))) != (self.device_port, self.api_port):
            await self.stop()
            raise ServerFailed(f"unexpected banner: {text.strip()}")

    async def stop(self) -> int | None:
        """SIGINT (a clean shutdown, as Ctrl-C); kill if it does not end in time. The exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                with trio.move_on_after(STOP_LIMIT):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                if proc.stdout is not None:
                    await proc.stdout.aclose()
        return proc.returncode

    async def kill(self) -> int | None:
        """SIGKILL, as `kill -9`: no shutdown at all. The exit code (-9)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()
        return proc.returncode

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
