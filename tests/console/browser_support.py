"""What the browser tests drive: a real `fleetgate serve` subprocess, simulated devices on their own
trio loop in a thread (the tests are plain `def`: Playwright's sync API), and Debian's Chromium."""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import trio

from firmware_sim.cli import parse_server_key
from firmware_sim.device import DeviceSettings, SimDevice, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import Privilege, Status
from tests.e2e.cli_support import Served

PASSWORD = "correct horse battery"
# Playwright's own flags cover headless, sandbox and first-run; these keep Chromium off the network.
CHROMIUM_FLAGS = [
    "--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-dev-shm-usage", "--no-first-run",
]  # fmt: skip


def chromium_or_fail() -> str:
    """Debian's Chromium. Missing: CI fails (a green run must not hide it), a developer's run skips."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is not None:
        return path
    message = "no chromium on PATH: apt-get install -y chromium (.ci/run installs it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("FLEETGATE_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Setup:
    """The served console's world, made through the API with the first-run admin token."""

    served: Served
    admin_token: str

    @property
    def url(self) -> str:
        return self.served.api

    def call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        response = httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response

    def user(self, username: str, *, admin: bool = False) -> None:
        self.call("POST", "/v1/users", json={"username": username, "password": PASSWORD, "admin": admin})

    def product(self, product_id: int, name: str) -> None:
        self.call("POST", "/v1/products", json={"name": name, "id": product_id, "policy": "quarantine"})

    def provision(self, identity: DeviceIdentity) -> None:
        key = identity.key.public.hex()
        self.call("POST", f"/v1/provisioning/{identity.device_id_hex}", json={"public_key": key})


@dataclass
class LiveDevice:
    """A SimDevice connected from a thread of its own; the test reads what the server told it."""

    identity: DeviceIdentity
    statuses: list[tuple[Status, Privilege]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def device_id(self) -> str:
        return self.identity.device_id_hex

    def wait_for(self, status: Status, timeout: float = 10) -> tuple[Status, Privilege]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.statuses and self.statuses[-1][0] is status:
                return self.statuses[-1]
            time.sleep(0.05)
        raise AssertionError(f"{self.device_id}: never told {status.name}; told {self.statuses}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


@contextmanager
def live_device(served: Served, identity: DeviceIdentity, product_id: int) -> Iterator[LiveDevice]:
    """Connect `identity` with firmware of `product_id` and keep it connected until the block ends."""
    device = LiveDevice(identity)
    key = parse_server_key(str(served.data / "server.pub"))
    ready: queue.Queue[BaseException | None] = queue.Queue()

    async def watch(dev: SimDevice) -> None:
        while not device._stop.is_set():
            current = (dev.state.status, dev.state.privileges)
            if current[0] is not None and (not device.statuses or device.statuses[-1] != current):
                device.statuses.append((current[0], current[1]))
            await trio.sleep(0.02)

    async def main() -> None:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", served.port)
            async with connect_device(stream, identity, key, DeviceSettings(product_id=product_id)) as dev:
                await dev.ping()
                ready.put(None)
                await watch(dev)
        except BaseException as exc:
            ready.put(exc)
            raise

    device._thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    device._thread.start()
    problem = ready.get(timeout=15)
    if problem is not None:
        raise AssertionError(f"device {identity.device_id_hex} did not connect: {problem!r}")
    try:
        yield device
    finally:
        device.stop()
