"""Many simulated devices in one nursery: each connects, publishes, holds, and leaves."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import trio

from protocol.codes import AckResult, Privilege, Status
from protocol.errors import RemoteProtocolError
from protocol.noise import KeyPair

from .device import DeviceClosed, DeviceRefused, DeviceSettings, SimDevice
from .fleet_reboot import booted_version, run_after_reboot
from .identity import DeviceIdentity


@dataclass(slots=True)
class DeviceOutcome:
    device_id: str
    outcome: str = "error"  # connected | refused | error
    status: str | None = None
    privileges: list[str] = field(default_factory=list)
    events_sent: int = 0
    events_acked: int = 0
    handshake_ms: float | None = None
    close_reason: str | None = None
    error: str | None = None
    final_status: str | None = None  # after any STATUS updates the server pushed
    final_privileges: list[str] = field(default_factory=list)
    updates: list[dict[str, object]] = field(default_factory=list)
    firmware_updates: list[dict[str, int]] = field(default_factory=list)  # installed images: {"from", "to"}

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FleetPlan:
    host: str
    port: int
    server_public_key: bytes
    settings: DeviceSettings = field(default_factory=DeviceSettings)
    publish: int = 0  # events per device
    hold: float = 0.0  # seconds to stay connected after publishing
    connect_concurrency: int = 512  # handshakes in flight at once
    timeout: float = 30.0  # per-device limit for connect + publish
    wait_status: Status | None = None  # with hold: leave as soon as the server grants this status
    behaviour: str = "normal"  # normal | spoof (a registered device ID with a key of its own)


def privilege_names(privileges: Privilege) -> list[str]:
    return [p.name.lower() for p in Privilege if p and p.name and p in privileges]


async def run_device(plan: FleetPlan, identity: DeviceIdentity, limiter: trio.CapacityLimiter) -> DeviceOutcome:
    out = DeviceOutcome(identity.device_id_hex)
    if plan.behaviour == "spoof":
        identity = DeviceIdentity(identity.device_id, KeyPair.generate())
    device = last = SimDevice(identity, plan.server_public_key, plan.settings)  # last: after any reboots
    stream: trio.SocketStream | None = None
    until = -math.inf  # end of the hold, on the Trio clock
    try:
        with trio.fail_after(plan.timeout) as limit:
            async with limiter:
                start = trio.current_time()
                limit.deadline = start + plan.timeout  # from the connect: waiting for a slot is not counted
                stream = await trio.open_tcp_stream(plan.host, plan.port)
                welcome = await device.handshake(stream)
                out.handshake_ms = round((trio.current_time() - start) * 1000, 3)
            out.outcome, out.status = "connected", welcome.status.name.lower()
            out.privileges = privilege_names(welcome.privileges)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(device.run)
                async with trio.open_nursery() as publishers:
                    for i in range(plan.publish):
                        out.events_sent += 1
                        publishers.start_soon(_publish_one, device, i)
                limit.deadline = math.inf  # --timeout bounds connecting and publishing, never the hold
                if plan.hold > 0:
                    until = trio.current_time() + plan.hold
                    with trio.move_on_at(until):
                        if plan.wait_status is not None:
                            await device.wait_status(plan.wait_status)
                        else:
                            await device.closed_event.wait()
                await device.goodbye()
                nursery.cancel_scope.cancel()
            while last.rebooting_into is not None:  # it installed an image: back on the new version
                if booted_version(last) != last.settings.firmware_version:
                    out.firmware_updates.append({"from": last.settings.firmware_version, "to": booted_version(last)})
                if trio.current_time() >= until:
                    break
                last = await run_after_reboot(plan, identity, last, until, limiter)
    except DeviceRefused:
        out.outcome = "refused"
    except DeviceClosed as exc:
        out.error = str(exc)
    except trio.TooSlowError:
        out.error = f"timed out after {plan.timeout:g} s"
    except (OSError, trio.BrokenResourceError, RemoteProtocolError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)
    out.events_acked = device.events_acked
    if last.state.status is not None:
        out.final_status = last.state.status.name.lower()
        out.final_privileges = privilege_names(last.state.privileges)
    out.updates = [
        {"status": u.status.name.lower(), "privileges": privilege_names(u.privileges)} for u in device.state.updates
    ]
    if last.closed is not None and out.outcome == "connected":
        out.close_reason = last.closed.reason.name.lower()
    return out


SLOW_DOWN_RETRIES = 120  # a device told to slow down publishes again after a pause, this often


async def _publish_one(device: SimDevice, index: int) -> None:
    """One acked publish, again after a pause while the server says SLOW_DOWN (as firmware would);
    a link that ends first shows up as sent-but-not-acked, not as a crash."""
    with contextlib.suppress(DeviceClosed):
        for _ in range(SLOW_DOWN_RETRIES):
            result = await device.publish(f"sim/event-{index % 8}", f"{index}".encode(), ttl=60, private=True)
            if result is not AckResult.SLOW_DOWN:
                return
            await trio.sleep(1.0)


async def run_fleet(
    plan: FleetPlan,
    identities: list[DeviceIdentity],
    on_done: Callable[[DeviceOutcome], None] | None = None,
) -> list[DeviceOutcome]:
    limiter = trio.CapacityLimiter(plan.connect_concurrency)
    results: list[DeviceOutcome | None] = [None] * len(identities)

    async def one(index: int, identity: DeviceIdentity) -> None:
        results[index] = outcome = await run_device(plan, identity, limiter)
        if on_done is not None:
            on_done(outcome)

    async with trio.open_nursery() as nursery:
        for index, identity in enumerate(identities):
            nursery.start_soon(one, index, identity)
    return [r for r in results if r is not None]


def update_paths(outcomes: list[DeviceOutcome]) -> dict[str, int]:
    """Installed updates by path ("1 -> 2"): how many times devices went that way."""
    paths: dict[str, int] = {}
    for o in outcomes:
        for update in o.firmware_updates:
            path = f"{update['from']} -> {update['to']}"
            paths[path] = paths.get(path, 0) + 1
    return paths


def updates_installed(outcomes: list[DeviceOutcome]) -> str:
    """The summary line's figure: 10 (1 -> 2), or 12 (1 -> 2: 10, 2 -> 3: 2); "" when none installed."""
    paths = update_paths(outcomes)
    if not paths:
        return ""
    ways = ", ".join(paths) if len(paths) == 1 else ", ".join(f"{p}: {n}" for p, n in paths.items())
    return f"{sum(paths.values())} ({ways})"


def summarize(outcomes: list[DeviceOutcome], elapsed: float) -> dict[str, object]:
    latencies = sorted(o.handshake_ms for o in outcomes if o.handshake_ms is not None)

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, max(0, math.ceil(p * len(latencies)) - 1))]

    statuses: dict[str, int] = {}
    finals: dict[str, int] = {}
    installed = update_paths(outcomes)
    for o in outcomes:
        if o.status:
            statuses[o.status] = statuses.get(o.status, 0) + 1
        if o.final_status:
            finals[o.final_status] = finals.get(o.final_status, 0) + 1
    return {
        "devices": len(outcomes),
        "connected": sum(o.outcome == "connected" for o in outcomes),
        "refused": sum(o.outcome == "refused" for o in outcomes),
        "errors": sum(o.outcome == "error" or o.error is not None for o in outcomes),
        "statuses": statuses,
        "final_statuses": finals,
        "status_updates": sum(len(o.updates) for o in outcomes),
        "events_sent": sum(o.events_sent for o in outcomes),
        "events_acked": sum(o.events_acked for o in outcomes),
        "updates_installed": sum(installed.values()),
        "update_paths": installed,
        "handshake_ms_p50": pct(0.50),
        "handshake_ms_p99": pct(0.99),
        "elapsed_s": round(elapsed, 3),
    }
