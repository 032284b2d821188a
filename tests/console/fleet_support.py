"""Simulated devices for the browser tests, each on real sockets against the `fleetgate serve`
subprocess, on a trio loop in a thread of its own (the browser tests are plain `def`): a fleet that
reboots into whatever verified image it receives, and a device that publishes one event."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from firmware_sim.cli import parse_server_key
from firmware_sim.device import DeviceClosed, DeviceRefused, DeviceSettings, SimDevice, connect_device
from firmware_sim.flash import Flash
from firmware_sim.identity import DeviceIdentity
from protocol.codes import Status
from protocol.errors import RemoteProtocolError
from tests.e2e.cli_support import Served


async def _device_life(
    served: Served, identity: DeviceIdentity, flash: Flash, product: int, first: int, ota: str
) -> None:
    """Connect, reboot into whatever verified image arrives, reconnect; until cancelled."""
    key = parse_server_key(str(served.data / "server.pub"))
    while True:
        settings = DeviceSettings(product_id=product, firmware_version=flash.installed_version or first, ota=ota)
        device = SimDevice(identity, key, settings, flash=flash)
        with contextlib.suppress(OSError, DeviceRefused, DeviceClosed, RemoteProtocolError, trio.BrokenResourceError):
            stream = await trio.open_tcp_stream("127.0.0.1", served.port)
            try:
                await device.handshake(stream)
                await device.run()
            finally:
                await stream.aclose()
        await trio.sleep(0.05)


@contextmanager
def running_fleet(
    served: Served,
    identities: list[DeviceIdentity],
    product: int,
    first: int = 1,
    refusing: frozenset[str] = frozenset(),
) -> Iterator[None]:
    """These devices connected (and updating, but for the `refusing` ones) until the block ends."""
    stop = threading.Event()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for identity in identities:
                ota = "refuse" if identity.device_id_hex in refusing else "accept"
                nursery.start_soon(_device_life, served, identity, Flash(), product, first, ota)
            await trio.to_thread.run_sync(stop.wait)
            nursery.cancel_scope.cancel()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def publish_once(served: Served, identity: DeviceIdentity, product: int, name: str, data: bytes) -> None:
    """Connect as a member of `product`, publish one event (acknowledged: stored), say goodbye."""

    async def main() -> None:
        key = parse_server_key(str(served.data / "server.pub"))
        with trio.fail_after(15):
            stream = await trio.open_tcp_stream("127.0.0.1", served.port)
            async with connect_device(stream, identity, key, DeviceSettings(product_id=product)) as device:
                await device.wait_status(Status.OK)
                await device.publish(name, data)

    trio.run(main)
