"""A simulated device's life for tests that watch firmware arrive: connect over real sockets, reboot
into whatever verified image arrives, reconnect; until cancelled."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import trio

from firmware_sim.device import DeviceClosed, DeviceRefused, DeviceSettings, SimDevice
from firmware_sim.flash import Flash
from firmware_sim.identity import DeviceIdentity
from protocol.errors import RemoteProtocolError


async def device_life(
    port: int | Callable[[], int],
    key: bytes,
    identity: DeviceIdentity,
    product: int,
    flash: Flash,
    *,
    first: int = 1,
    ota: str = "accept",
) -> None:
    """`port` may be asked again at each connection (a server restarted on a new port); `first` is
    the version it runs until an image is installed; `ota` how it answers offers."""
    while True:
        settings = DeviceSettings(product_id=product, firmware_version=flash.installed_version or first, ota=ota)
        device = SimDevice(identity, key, settings, flash=flash)
        with contextlib.suppress(OSError, DeviceRefused, DeviceClosed, RemoteProtocolError, trio.BrokenResourceError):
            stream = await trio.open_tcp_stream("127.0.0.1", port() if callable(port) else port)
            try:
                await device.handshake(stream)
                await device.run()
            finally:
                await stream.aclose()
        await trio.sleep(0.05)
