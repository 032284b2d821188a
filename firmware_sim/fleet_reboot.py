"""A fleet device that verified an image "reboots": it connects again, reporting the version it
installed, and stays for what is left of its hold, as often as updates keep coming.

Each connection is a new SimDevice on the same Flash (the image and its resume state survive a
reboot). A device set to fail its boot comes back on its old version, as in a drill.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import trio

from .device import SimDevice
from .identity import DeviceIdentity

if TYPE_CHECKING:
    from .fleet import FleetPlan

BOOT_TIME = 0.05  # seconds a "reboot" takes before the device connects again


def booted_version(device: SimDevice) -> int:
    """What the device runs after its reboot: the installed image, or (boot failed) what it ran."""
    installed = device.flash.installed_version
    return installed if installed is not None else device.settings.firmware_version


async def run_after_reboot(
    plan: FleetPlan, identity: DeviceIdentity, before: SimDevice, until: float, limiter: trio.CapacityLimiter
) -> SimDevice:
    """Connect again on the version `before` rebooted into and run until `until` (Trio clock), the
    link ends, or another verified image reboots it. Errors are the caller's, as for the first:
    the connect takes a slot of --concurrency and is bounded by --timeout, as the first was."""
    await trio.sleep(BOOT_TIME)
    settings = replace(before.settings, firmware_version=booted_version(before))
    device = SimDevice(identity, plan.server_public_key, settings, flash=before.flash)
    stream: trio.SocketStream | None = None
    try:
        async with limiter:
            with trio.fail_after(plan.timeout):
                stream = await trio.open_tcp_stream(plan.host, plan.port)
                await device.handshake(stream)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(device.run)
            with trio.move_on_at(until):
                await device.closed_event.wait()
            await device.goodbye()
            nursery.cancel_scope.cancel()
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)
    return device
