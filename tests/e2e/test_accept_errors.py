"""Issue 14, item 4: out of descriptors, every listener logs one line per burst, no traceback, and
the server keeps serving once descriptors are free again.

A real `fleetgate serve` with a low RLIMIT_NOFILE: idle connections to the HTTP API take every
descriptor (Hypercorn holds each until its read timeout), then more wait on both ports while accept
fails with EMFILE every 0.1 s. Before: the device port logged a line per retry and the API's accept
loop (trio's serve_listeners, inside Hypercorn) a traceback per retry.
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from .cli_support import FLEETGATE

DESCRIPTORS = 160  # the server's limit: startup needs a few dozen
HOGS = 200  # idle connections to the API: more than the server can accept, fewer than it and its queue hold
WAITING = 20  # connections to each port while accept fails


def limit_descriptors() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


@contextlib.contextmanager
def connections(port: int, n: int, say: bytes = b"") -> Iterator[list[socket.socket]]:
    """Up to n connections (those the listen queue takes) held open, then closed."""
    held: list[socket.socket] = []
    try:
        for _ in range(n):
            with contextlib.suppress(OSError):
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                held.append(sock)
                sock.sendall(say)
        yield held
    finally:
        for sock in held:
            sock.close()


def events(log: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_descriptor_exhaustion_is_one_line_per_listener_and_the_server_recovers(tmp_path: Path) -> None:
    with serving_with(tmp_path, limit_descriptors) as (_proc, banner):
        device_port = int(re.findall(r"devices connect to 127\.0\.0\.1:(\d+)", banner)[0])
        api = re.findall(r"API at (http://127\.0\.0\.1:\d+)", banner)[0]
        api_port = int(api.rsplit(":", 1)[1])
        token = (tmp_path / "data" / "admin.token").read_text().strip()

        # Half a request each: Hypercorn waits for the rest (its read timeout, 120 s), not just its
        # keep-alive timeout (5 s), so the descriptors stay taken.
        with connections(api_port, HOGS, b"GET /v1/products HTTP/1.1\r\n") as hogs:
            assert len(hogs) > DESCRIPTORS  # some wait in the queue: the server had none left
            with connections(api_port, WAITING), connections(device_port, WAITING):
                time.sleep(2.0)  # twenty retries a listener
        # Descriptors free again: both ports serve.
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"{api}/v1/products", headers={"Authorization": f"Bearer {token}"}, timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the API did not answer again"
                time.sleep(0.2)
        assert answer.status_code == 200
        with socket.create_connection(("127.0.0.1", device_port), timeout=10) as device:
            device.sendall(b"GET / HTTP/1.1\r\n\r\n")  # not the protocol: refused with the bare frame
            assert device.recv(16) == b"\x00\x00"

    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log
    failed = [e for e in events(log) if e["event"] == "accept_failed"]
    assert {e["listener"] for e in failed} == {"api", "devices"}, failed
    assert len(failed) <= 4, failed  # one per listener per burst, not one per retry
    assert all(e["errno"] == "EMFILE" for e in failed)


def test_serve_raises_its_descriptor_limit_to_the_hard_limit(tmp_path: Path) -> None:
    """Each connection, and each one waiting its address's turn, is a descriptor: `fleetgate serve`
    does not stay at a low soft limit it may raise itself."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 4096  # the child gets a finite hard limit to rise to

    def low_soft_limit() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(200, hard), hard))

    with serving_with(tmp_path, low_soft_limit) as (proc, _banner):
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
    soft_now = int(re.search(r"Max open files\s+(\d+)", limits).group(1))  # type: ignore[union-attr]
    assert soft_now == hard


@contextlib.contextmanager
def serving_with(tmp_path: Path, preexec: Callable[[], None]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`fleetgate serve` with `preexec` run in the child first; stopped with SIGINT afterwards."""
    stderr = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [*FLEETGATE, "serve", "--data-dir", str(tmp_path / "data"), "--device-port", "0", "--api-port", "0"],
        stdout=subprocess.PIPE, stderr=stderr, text=True, preexec_fn=preexec,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = ""
        for line in proc.stdout:
            banner += line
            if "Ctrl-C" in line:
                break
        yield proc, banner
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        stderr.close()
