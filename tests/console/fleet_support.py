"""Simulated devices for the browser tests, each on real sockets against the `fleetgate serve`
subprocess, on a trio loop in a thread of its own (the browser tests are plain `def`): a fleet that
reboots into whatever verified image it receives, and a device that publishes one event."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import trio

from firmware_sim.cli import parse_server_key
from firmware_sim.device import DeviceSettings, connect_device
from firmware_sim.flash import Flash
from firmware_sim.identity import DeviceIdentity
from protocol.codes import Status
from tests.device_life import device_life
from tests.e2e.cli_support import Served


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
    key = parse_server_key(str(served.data / "server.pub"))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for identity in identities:
                ota = "refuse" if identity.device_id_hex in refusing else "accept"
                nursery.start_soon(
                    partial(device_life, served.port, key, identity, product, Flash(), first=first, ota=ota)
                )
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
