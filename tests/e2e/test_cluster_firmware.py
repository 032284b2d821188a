"""Firmware binaries are reachable from every node of a cluster (docs/CLUSTER.md, "How the nodes
work together"): three `fleetgate serve` processes on one PostgreSQL database; firmware uploaded
and released through node 1's API reaches, over the air, a simulated device connected to node 2,
which fetches the binary from the store and keeps a copy in its own data directory.

Needs FLEETGATE_TEST_DATABASE_URL (tests/cluster_pg.py: skipped without it, failed in CI without it).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from firmware_sim import firmware
from firmware_sim.device import DeviceClosed, DeviceRefused, DeviceSettings, SimDevice, connect_device
from firmware_sim.flash import Flash
from firmware_sim.identity import DeviceIdentity
from protocol.codes import OtaResult, Status
from protocol.errors import RemoteProtocolError
from protocol.noise import KeyPair
from server.firmware.node_cache import CACHE_DIR
from tests.cluster_pg import fresh_database

from .cli_support import Served, start_server

pytestmark = pytest.mark.postgres

P = 7301


def _private_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[list[Served], bytes]]:
    """Three nodes of one cluster, and the server key they share (its public half)."""
    with fresh_database() as database:
        key = KeyPair.generate()
        key_file = _private_file(tmp_path / "server.key", key.private.hex())
        secrets_file = _private_file(tmp_path / "secrets.key", secrets.token_hex(32))
        started: list[Served] = []
        try:
            for i in (1, 2, 3):
                started.append(
                    start_server(
                        tmp_path / f"n{i}", "--database", database, "--node-id", f"n{i}", "--server-key",
                        str(key_file), "--secrets-key-file", str(secrets_file), "--log-level", "warning",
                    )
                )  # fmt: skip
            yield started, key.public
        finally:
            for node in started:
                if node.proc.poll() is None:
                    node.proc.kill()
                node.proc.communicate(timeout=10)


async def updated_on(
    node: Served, server_key: bytes, identity: DeviceIdentity, flash: Flash, results: list[OtaResult]
) -> SimDevice:
    """Connect to `node` on version 1 and run until the device has rebooted into the release (its
    transfers' results in `results`), then connect once more, as the version that booted: that
    last session."""
    while flash.installed_version != 2:
        device = SimDevice(identity, server_key, DeviceSettings(product_id=P, firmware_version=1), flash=flash)
        with contextlib.suppress(OSError, DeviceRefused, DeviceClosed, RemoteProtocolError, trio.BrokenResourceError):
            stream = await trio.open_tcp_stream("127.0.0.1", node.port)
            try:
                await device.handshake(stream)
                await device.run()  # returns when the device reboots into a verified image
            finally:
                await stream.aclose()
        results.extend(r.status for r in device.ota_results)
        await trio.sleep(0.05)
    stream = await trio.open_tcp_stream("127.0.0.1", node.port)
    settings = DeviceSettings(product_id=P, firmware_version=2)
    async with connect_device(stream, identity, server_key, settings) as device:
        await device.ping()  # READY was processed: the node has stored the version it runs
    return device


async def test_firmware_uploaded_to_one_node_reaches_a_device_on_another(
    nodes: tuple[list[Served], bytes], tmp_path: Path
) -> None:
    (n1, n2, n3), server_key = nodes
    token = (tmp_path / "n1" / "admin.token").read_text().strip()  # the first node made the admin
    image = firmware.build(P, 2, 150_000, seed=3)
    sha256 = hashlib.sha256(image).hexdigest()
    identity = DeviceIdentity.generate()
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:

        async def ok(method: str, url: str, **kwargs: object) -> httpx.Response:
            answer = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
            assert answer.status_code < 300, (url, answer.status_code, answer.text)
            return answer

        await ok("POST", f"{n1.api}/v1/products", json={"name": "Lamp", "id": P})
        device = {"id": identity.device_id_hex, "public_key": identity.key.public.hex()}
        await ok("POST", f"{n1.api}/v1/provisioning", json={"devices": [device]})
        await ok("POST", f"{n1.api}/v1/products/{P}/devices", json={"id": identity.device_id_hex})
        files = {"binary": ("lamp-2.bin", image)}
        await ok("POST", f"{n1.api}/v1/products/{P}/firmware", files=files, data={"version": "2", "title": "v2"})
        release = {"version": 2, "product_default": True}
        await ok("PUT", f"{n1.api}/v1/products/{P}/firmware/release", json=release)

        flash = Flash()
        results: list[OtaResult] = []
        with trio.fail_after(30):
            after = await updated_on(n2, server_key, identity, flash, results)
        assert results == [OtaResult.VERIFIED] and flash.installed_version == 2
        assert flash.read(0, len(image)) == image
        assert after.state.status is Status.OK and after.ota_results == []  # on target: nothing more offered
        shown = (await ok("GET", f"{n3.api}/v1/products/{P}/devices/{identity.device_id_hex}")).json()
        assert shown["firmware_version"] == 2

        # Node 2 fetched the binary from the store and kept a copy; node 1 kept one at upload.
        assert (n2.data / CACHE_DIR / f"{sha256}.bin").read_bytes() == image
        assert (n1.data / CACHE_DIR / f"{sha256}.bin").read_bytes() == image
        assert not (n3.data / CACHE_DIR / f"{sha256}.bin").exists()
        # The API's download works from any node too.
        download = await ok("GET", f"{n3.api}/v1/products/{P}/firmware/2/binary")
        assert download.content == image and download.headers["x-firmware-sha256"] == sha256
