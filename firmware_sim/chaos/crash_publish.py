"""`fleetsim chaos crash-publish`: kill -9 the server under publish load; no acked event lost.

K registered devices publish events with unique data, a few in flight each, and remember every
event the server acknowledged. R times during the run the server is killed with SIGKILL and
started again on the same data directory; the devices reconnect with backoff and carry on. At the
end every stored event is read back through the API (GET /v1/devices/events/chaos/pub?after=0,
docs/API.md) and each acknowledged event must be among them.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field

import httpx
import trio

from protocol.codes import AckResult
from protocol.errors import ProtocolError, RemoteProtocolError

from ..device import DeviceClosed, DeviceRefused, DeviceSettings, SimDevice
from ..drill_server import ServerProcess
from ..identity import DeviceIdentity
from .health import LogFindings, api_answers, device_serves, log_check, register, scan_log
from .report import Check, emit
from .target import ScenarioError, Target, add_json_option, own_server, positive, positive_float

EVENT = "chaos/pub"
CONNECT_LIMIT = 10.0  # seconds for a connect and handshake before a device tries again
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 2.0
READ_IDLE = 5.0  # reading back: the replay is over once nothing came for this long
READ_LIMIT = 120.0


@dataclass(slots=True)
class Tally:
    acked: set[tuple[str, str]] = field(default_factory=set)  # (device ID, data)
    sent: int = 0
    slowed: int = 0
    connects: int = 0
    connect_failures: Counter[str] = field(default_factory=Counter)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetsim chaos crash-publish", description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=positive, default=100, metavar="K", help="publishing devices (default 100)")
    p.add_argument("--duration", type=positive_float, default=20.0, metavar="S", help="seconds of load (default 20)")
    p.add_argument("--kills", type=int, default=3, metavar="R", help="kill -9s, evenly spread (default 3)")
    p.add_argument("--inflight", type=positive, default=4, metavar="W", help="publishes in flight per device (4)")
    p.add_argument(
        "--publish-rate", type=positive_float, default=20.0, metavar="PER_S",
        help="the server's --publish-rate (and burst) for the run (default 20)",
    )  # fmt: skip
    add_json_option(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.kills < 0:
        raise ScenarioError("--kills must be 0 or more")
    try:
        return trio.run(_run, args)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise  # our stdout closed (`| head`): fleetsim exits quietly
        raise ScenarioError(f"crash-publish: {exc}") from None


async def _run(args: argparse.Namespace) -> int:
    rate = f"{args.publish_rate:g}"
    extra = ("--publish-rate", rate, "--publish-burst", str(max(1, round(args.publish_rate))))
    async with own_server("warning", extra) as own:
        target = own.target()
        identities = [DeviceIdentity.generate() for _ in range(args.devices)]
        await register(target, identities)
        tally = Tally()
        restarts: list[float] = []
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for index, identity in enumerate(identities):
                nursery.start_soon(_device, target, identity, index, args.inflight, tally)
            await _kill_and_restart(own.process, args.kills, started, args.duration, restarts)
            await trio.sleep_until(started + args.duration)
            nursery.cancel_scope.cancel()
        load_s = trio.current_time() - started
        stored = await read_back(target)
        serving = await device_serves(target)
        api_ok = await api_answers(target)
        alive = own.process.running
        log = scan_log(own.process.log_path)
    return _report(args, tally, stored, restarts, load_s, serving, api_ok, alive, log)


async def _kill_and_restart(
    server: ServerProcess, kills: int, started: float, duration: float, out: list[float]
) -> None:
    for i in range(kills):
        await trio.sleep_until(started + duration * (i + 1) / (kills + 1))
        at = trio.current_time()
        await server.kill()
        await server.start()  # same data directory, same ports
        out.append(round(trio.current_time() - at, 3))


async def _device(target: Target, identity: DeviceIdentity, index: int, inflight: int, tally: Tally) -> None:
    """Connect, publish until the link ends, connect again (with backoff) until cancelled."""
    counter = [0]
    backoff = BACKOFF_FIRST
    while True:
        device = SimDevice(identity, target.server_key, DeviceSettings(heartbeat=False))
        stream: trio.SocketStream | None = None
        try:
            with trio.fail_after(CONNECT_LIMIT):
                stream = await trio.open_tcp_stream(target.host, target.port)
                await device.handshake(stream)
            tally.connects += 1
            backoff = BACKOFF_FIRST
            async with trio.open_nursery() as nursery:
                nursery.start_soon(device.run)
                async with trio.open_nursery() as publishers:
                    for _ in range(inflight):
                        publishers.start_soon(_publisher, device, index, counter, tally)
                nursery.cancel_scope.cancel()
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, DeviceRefused, DeviceClosed,
                RemoteProtocolError) as exc:  # fmt: skip
            tally.connect_failures[type(exc).__name__] += 1
        finally:
            if stream is not None:
                await trio.aclose_forcefully(stream)
        await trio.sleep(backoff)
        backoff = min(BACKOFF_MAX, backoff * 2)


async def _publisher(device: SimDevice, index: int, counter: list[int], tally: Tally) -> None:
    """Publish events with unique data until the link ends; remember each one acked."""
    while True:
        counter[0] += 1
        data = f"{index}:{counter[0]}"
        tally.sent += 1
        try:
            result = await device.publish(EVENT, data.encode(), ttl=60, private=True)
        except (DeviceClosed, ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if result is AckResult.ACCEPTED:
            tally.acked.add((device.device_id, data))
        elif result is AckResult.SLOW_DOWN:
            tally.slowed += 1
            await trio.sleep(0.25)


async def read_back(target: Target) -> set[tuple[str, str]]:
    """Every stored chaos event, as (device ID, data), read from the API's replay."""
    found: set[tuple[str, str]] = set()
    headers = {"Authorization": f"Bearer {target.admin_token}"}
    url = f"{target.api}/v1/devices/events/{EVENT}"
    with trio.move_on_after(READ_LIMIT):
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(READ_LIMIT)) as client,
            client.stream("GET", url, params={"after": 0}, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise ScenarioError(f"GET {url}: {response.status_code}")
            lines = response.aiter_lines().__aiter__()
            while True:
                with trio.move_on_after(READ_IDLE) as idle:
                    line = await lines.__anext__()
                if idle.cancelled_caught:
                    break
                if line.startswith("data: "):
                    body = json.loads(line[6:])
                    found.add((str(body["coreid"]), str(body["data"])))
    return found


def _report(
    args: argparse.Namespace, tally: Tally, stored: set[tuple[str, str]], restarts: list[float], load_s: float,
    serving: str | None, api_ok: bool, alive: bool, log: LogFindings,
) -> int:  # fmt: skip
    missing = tally.acked - stored
    figures: dict[str, object] = {
        "devices": args.devices, "load_s": round(load_s, 1), "kills": len(restarts), "restart_s": restarts,
        "sent": tally.sent, "acked": len(tally.acked), "found": len(tally.acked & stored), "missing": len(missing),
        "stored_not_acked": len(stored - tally.acked), "slowed": tally.slowed, "connects": tally.connects,
        "connect_failures": dict(tally.connect_failures), "acked_per_s": round(len(tally.acked) / load_s, 1),
        "missing_sample": sorted(missing)[:5], "server_log": log.as_json(),
    }  # fmt: skip
    checks = [
        Check("every acked event is stored", not missing, f"{len(missing)} of {len(tally.acked)} missing"),
        Check("events were acked", bool(tally.acked)),
        Check(f"the server was killed {args.kills} times", len(restarts) == args.kills, f"{len(restarts)}"),
        Check("server alive", alive),
        Check("a real device connects and publishes afterwards", serving is None, serving or ""),
        Check("the API answers afterwards", api_ok),
        log_check(log),
    ]
    lines = [
        f"{args.devices} devices published for {load_s:.1f} s; {len(restarts)} kill -9s, back after "
        + ", ".join(f"{s:.2f} s" for s in restarts),
        f"events: {tally.sent} sent, {len(tally.acked)} acked ({figures['acked_per_s']}/s), "
        f"{len(tally.acked & stored)} of them found, {len(missing)} missing; "
        f"{len(stored - tally.acked)} stored without an ack reaching the device",
        f"connections: {tally.connects}, failed attempts {dict(tally.connect_failures)}",
    ]
    return emit("crash-publish", figures, checks, lines, args.json)
