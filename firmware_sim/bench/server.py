"""The server under test: a real `fleetgate serve` process on loopback, in a temporary data
directory, pinned to its own core, set up through the operator HTTP API like any fleet."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from protocol.messages import parse_public_key

from .. import firmware
from ..drill_server import free_ports
from ..identity import DeviceIdentity

START_LIMIT = 60.0
STOP_LIMIT = 20.0
API_BATCH = 10_000  # the API's limit per provisioning or pre-add request
PRODUCT_ID = 4242


def serve_command(data_dir: Path, device_port: int, api_port: int, log_level: str,
                  publish_rate: float | None, max_handshakes: int | None = None,
                  database: str | None = None) -> list[str]:  # fmt: skip
    """`fleetgate serve` for one run; with `publish_rate`, the per-device publish limit raised;
    with `max_handshakes`, the server's accept limit set; with `database`, on PostgreSQL."""
    cmd = [
        sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data_dir), "--device-port", str(device_port),
        "--api-port", str(api_port), "--log-level", log_level, "--max-firmware-size", str(16 * 1024 * 1024),
    ]  # fmt: skip
    if publish_rate is not None:
        cmd += ["--publish-rate", f"{publish_rate:g}", "--publish-burst", str(int(publish_rate))]
    if max_handshakes is not None:
        cmd += ["--max-handshakes", str(max_handshakes)]
    if database is not None:
        cmd += ["--database", database]
    return cmd


class ServerFailed(Exception):
    pass


@dataclass(slots=True)
class BenchServer:
    data_dir: Path
    log_level: str = "info"
    publish_rate: float | None = None  # None: the server's default limit
    max_handshakes: int | None = None  # None: the server's default
    database: str | None = None  # a PostgreSQL URL; None: SQLite in the data directory
    cores: frozenset[int] | None = None
    extra: list[str] = field(default_factory=list)  # more `fleetgate serve` flags (a cluster node's)
    device_port: int = 0
    api_port: int = 0
    command: list[str] = field(default_factory=list)
    public_key: bytes = b""
    token: str = ""
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    _banner: list[str] = field(default_factory=list)
    _serving: bool = False  # the banner's last line ("... Ctrl-C to stop") was read
    _client: httpx.Client | None = None
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "server.log"

    def start(self) -> None:
        self.device_port, self.api_port = free_ports(2)
        self.command = (
            serve_command(
                self.data_dir,
                self.device_port,
                self.api_port,
                self.log_level,
                self.publish_rate,
                self.max_handshakes,
                self.database,
            )
            + self.extra
        )
        self._log = self.log_path.open("ab")
        cores = self.cores

        def pin_self() -> None:  # runs in the child before exec: every thread it starts inherits it
            if cores is not None:
                os.sched_setaffinity(0, cores)

        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=self._log, preexec_fn=pin_self, cwd=Path(__file__).parents[2]
        )
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read_banner, args=(ready,), daemon=True)
        self._reader.start()
        # Not poll(): its output can end a moment before the process is seen to have exited.
        if not ready.wait(START_LIMIT) or not self._serving:
            self.stop()
            said = " | ".join(self._log_tail()) or " ".join(self._banner) or "no output"
            raise ServerFailed(f"the server did not start: {said}")
        if not self.public_key:  # a cluster node given --server-key writes no server.pub: it was set
            self.public_key = parse_public_key((self.data_dir / "server.pub").read_text().strip())
        token_file = self.data_dir / "admin.token"
        if token_file.exists() or not self.token:  # only the node that made the admin has the file
            self.token = token_file.read_text().strip()
        self._client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}", headers={"Authorization": f"Bearer {self.token}"},
            timeout=httpx.Timeout(120.0),
        )  # fmt: skip

    def _log_tail(self, lines: int = 3) -> list[str]:
        """The server's last log lines: why it stopped (its data directory may be gone by the time anyone looks)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line.strip() for line in text.strip().splitlines()[-lines:]]

    def _read_banner(self, ready: threading.Event) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            self._banner.append(line)
            if "Ctrl-C" in line:
                self._serving = True
                ready.set()
        ready.set()  # the process ended before serving: start() sees _serving is False

    def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        if self._client is not None:
            self._client.close()
            self._client = None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_LIMIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(5)  # it reads stdout to the end (the process has exited)
        if proc.stdout is not None:
            proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    # ------------------------------------------------------------------ the operator API

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        assert self._client is not None
        response = self._client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ServerFailed(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def register(self, identities: list[DeviceIdentity], product_id: int = PRODUCT_ID, preadd: bool = True) -> None:
        """Register the device keys and pre-add every device to the product (full privileges);
        without `preadd`, the devices stay quarantined until approved."""
        with contextlib.suppress(ServerFailed):  # already there on a second call
            self._call("POST", "/v1/products", json={"name": f"Bench {product_id}", "id": product_id})
        for i in range(0, len(identities), API_BATCH):
            batch = identities[i : i + API_BATCH]
            rows = [{"id": d.device_id_hex, "public_key": d.key.public.hex()} for d in batch]
            answer = self._call("POST", "/v1/provisioning", json={"devices": rows})
            if answer.get("errors"):
                raise ServerFailed(f"provisioning: {answer['errors'][:3]}")
            if not preadd:
                continue
            ids = "".join(f"{d.device_id_hex}\n" for d in batch)
            files = {"file": ("ids.txt", ids.encode(), "text/plain")}
            answer = self._call("POST", f"/v1/products/{product_id}/devices", files=files)
            if answer.get("invalidDeviceIds") or answer.get("nonmemberDeviceIds"):
                raise ServerFailed(f"pre-add: {answer}")

    def upload_firmware(self, version: int, size: int, product_id: int = PRODUCT_ID) -> bytes:
        binary = firmware.build(product_id, version, size, seed=version)
        self._call(
            "POST", f"/v1/products/{product_id}/firmware",
            data={"version": str(version), "title": f"bench v{version}"},
            files={"binary": (f"bench-{version}.bin", binary, "application/octet-stream")},
        )  # fmt: skip
        return binary

    def release(self, version: int, product_id: int = PRODUCT_ID) -> None:
        body = {"version": version, "product_default": True, "intelligent": True}  # online devices: now
        self._call("PUT", f"/v1/products/{product_id}/firmware/release", json=body)

    def stored_events(self) -> int:
        """Events in the store, read from the database file itself (WAL: readers do not block)."""
        if self.database is not None:
            from .pgdb import BackendMeter

            meter = BackendMeter(self.database)
            try:
                return meter.stored_events()
            finally:
                meter.close()
        db = sqlite3.connect(f"file:{self.data_dir / 'fleetgate.db'}?mode=ro", uri=True, timeout=30)
        try:
            (count,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
            return int(count)
        finally:
            db.close()

    def log_tail_errors(self, limit: int = 5) -> list[str]:
        """The last few warnings or errors the server logged (to say why a run failed)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        bad = [ln for ln in lines if re.search(r'"level": "(error|critical)"', ln) or "Traceback" in ln]
        return bad[-limit:]
