"""A drill device: one simulated device for the whole drill, across reconnects and "reboots".

It connects (TCP, handshake), runs until the link ends, and connects again: at once after a
reboot into a verified image (reporting the version that booted), with backoff (0.2 s doubling
to 2 s, jittered) after a dropped link, a refusal or a server restart. It stops only when the
drill cancels it. Everything that happens goes into its timeline for the report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio

from protocol.errors import RemoteProtocolError

from .device import DeviceClosed, DeviceRefused, DeviceSettings, SimDevice
from .flash import Flash
from .identity import DeviceIdentity

FAULTS = ("healthy", "drop", "corrupt", "refuse", "bootfail")
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 2.0
BOOT_TIME = 0.05  # seconds a "reboot" takes before the device connects again
HANDSHAKE_LIMIT = 20.0  # a connect + handshake slower than this is abandoned and retried
GOODBYE_LIMIT = 1.0  # time given to a clean goodbye when the drill stops the device


@dataclass(frozen=True, slots=True)
class DrillProfile:
    """How one drill device misbehaves; chosen by the drill from its seed."""

    fault: str = "healthy"  # one of FAULTS
    late_by: float | None = None  # offline until this many seconds after the rollout starts
    drop_after: int | None = None  # with fault "drop": bytes of the image before the link drops
    reboot_delay: float = 0.0  # seconds from OTA_COMPLETE(VERIFIED) to the goodbye that "reboots"

    def settings(self, product_id: int, version: int) -> DeviceSettings:
        return DeviceSettings(
            product_id=product_id,
            firmware_version=version,
            ota="refuse" if self.fault == "refuse" else "accept",
            drop_after_bytes=self.drop_after if self.fault == "drop" else None,
            corrupt_chunk=self.fault == "corrupt",
            boot_fails=self.fault == "bootfail",
            reboot_delay=self.reboot_delay,
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    server_public_key: bytes
    product_id: int


@dataclass(slots=True)
class Backoff:
    rng: random.Random
    delay: float = BACKOFF_FIRST

    def next(self) -> float:
        """The next wait: the current delay jittered to 50-100 % (so a fleet spreads out), then doubled."""
        wait = self.delay * self.rng.uniform(0.5, 1.0)
        self.delay = min(BACKOFF_MAX, self.delay * 2)
        return wait

    def reset(self) -> None:
        self.delay = BACKOFF_FIRST


Event = tuple[float, str, dict[str, int | str]]


@dataclass(slots=True)
class DrillDevice:
    identity: DeviceIdentity
    profile: DrillProfile
    version: int  # the firmware it runs now (what the next HELLO reports)
    t0: float  # the drill's start on the Trio clock: timeline times are relative to it
    rng: random.Random
    flash: Flash = field(default_factory=Flash)
    timeline: list[Event] = field(default_factory=list)
    bytes_by_version: dict[int, int] = field(default_factory=dict)
    connects: int = 0
    connected: trio.Event = field(default_factory=trio.Event)  # set at the first completed handshake
    first_status: str | None = None

    @property
    def device_id(self) -> str:
        return self.identity.device_id_hex

    def note(self, event: str, detail: dict[str, int | str] | None = None) -> None:
        self.timeline.append((round(trio.current_time() - self.t0, 3), event, detail or {}))

    async def run(self, endpoint: Endpoint, limiter: trio.CapacityLimiter, rollout_started: trio.Event) -> None:
        """Connect, run and reconnect until cancelled."""
        if self.profile.late_by is not None:
            await rollout_started.wait()
            await trio.sleep(self.profile.late_by)
        self.note("power_on", {"version": self.version})
        backoff = Backoff(self.rng)
        while True:
            rebooted = await self._session(endpoint, limiter, backoff)
            await trio.sleep(BOOT_TIME if rebooted else backoff.next())

    async def _session(self, endpoint: Endpoint, limiter: trio.CapacityLimiter, backoff: Backoff) -> bool:
        """One connection; True when it ended in a reboot into a verified image."""
        device = SimDevice(
            self.identity,
            endpoint.server_public_key,
            self.profile.settings(endpoint.product_id, self.version),
            flash=self.flash,
            observer=self.note,
        )
        stream: trio.SocketStream | None = None
        try:
            with trio.fail_after(HANDSHAKE_LIMIT):
                async with limiter:
                    stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
                    welcome = await device.handshake(stream)
            self.connects += 1
            status = welcome.status.name.lower()
            self.first_status = self.first_status or status
            self.note("connected", {"version": self.version, "status": status})
            self.connected.set()
            backoff.reset()
            try:
                await device.run()
            finally:
                with trio.move_on_after(GOODBYE_LIMIT) as scope:
                    scope.shield = True  # a drill stopping the device still says goodbye
                    await device.goodbye()
        except DeviceRefused:
            self.note("refused")
        except trio.TooSlowError:
            self.note("connect_failed", {"error": f"no handshake within {HANDSHAKE_LIMIT:g} s"})
        except (OSError, trio.BrokenResourceError, DeviceClosed, RemoteProtocolError) as exc:
            self.note("connect_failed", {"error": f"{type(exc).__name__}: {exc}"[:200]})
        finally:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            for version, n in device.bytes_by_version.items():
                self.bytes_by_version[version] = self.bytes_by_version.get(version, 0) + n
        if device.closed is not None and device.rebooting_into is None:
            self.note("disconnected", {"reason": device.closed.reason.name.lower()})
        if device.rebooting_into is None:
            return False
        booted = self.flash.installed_version if self.flash.installed_version is not None else self.version
        self.note("reboot", {"into": device.rebooting_into, "booted": booted})
        self.version = booted
        return True
