"""`fleetsim drill`: a staged rollout against a real server and a misbehaving simulated fleet.

    start the server (a subprocess) -> register, pre-add, upload v1 and v2, release v1
    -> bring up the fleet on v1 (each device with its fault) -> create the rollout
    -> poll it (live bars; a server restart when asked) until it ends or pauses
    -> per-device rows from the server + each device's own record -> checks, JSON, PNG

The fleet and the server are always stopped at the end, in that order (a nursery and finally).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from protocol.messages import parse_public_key

from . import firmware
from .drill_api import DrillApi
from .drill_checks import Check, DeviceFacts, Expectation, device_checks, device_problem, rollout_checks
from .drill_config import DrillConfig, DrillConfigError, assign_profiles, parse_mix
from .drill_device import DrillDevice, Endpoint
from .drill_progress import StateBars
from .drill_report import Sample, build_report, device_entry, facts_from_timeline
from .drill_server import ServerProcess, free_ports
from .identity import DeviceIdentity
from .quiet_exit import caused_by

OLD, NEW = 1, 2
POLL = 0.25  # seconds between polls of the rollout
SETTLE_LIMIT = 30.0  # after a pause: seconds to let transfers in flight finish before judging
CONNECT_SHARE = 0.5  # of --timeout: the most the fleet may take to come online before the rollout
HANDSHAKES_AT_ONCE = 128  # the fleet's handshakes in flight (a 2-core server takes them in turn)
FINISHED = frozenset({"completed", "rolled_back", "aborted"})


class DrillInterrupted(Exception):
    """Ctrl-C: the fleet and the server are stopped; the message says where the data was left."""


@dataclass(slots=True)
class Drill:
    config: DrillConfig
    server: ServerProcess
    devices: list[DrillDevice]
    t0: float
    bars: StateBars
    series: list[Sample] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # when the server was killed with SIGKILL (and restarted)
    rollout: dict[str, Any] | None = None
    rollout_started_s: float | None = None
    timed_out: bool = False
    notes: list[Check] = field(default_factory=list)

    def now(self) -> float:
        return round(trio.current_time() - self.t0, 3)


async def run_drill(config: DrillConfig) -> dict[str, object]:
    """Run the drill; the report (its "passed" says whether every check held)."""
    config.validate()
    data_dir, temporary = _data_dir(config.server_data)
    device_port, api_port = free_ports(2)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    server = ServerProcess(data_dir, device_port, api_port, log_path, log_level=config.server_log_level)
    t0 = trio.current_time()
    try:
        report = await _run_with_server(config, server, t0)
    except BaseException as exc:
        if not caused_by(exc, KeyboardInterrupt):
            raise
        where = data_dir.parent if temporary else f"{data_dir} (log: {log_path})"
        raise DrillInterrupted(f"drill interrupted; its server data and log are left in {where}") from None
    if temporary and report["passed"]:
        shutil.rmtree(data_dir.parent, ignore_errors=True)  # a failed drill keeps its data and log to look at
    else:
        report["server_data"], report["server_log"] = str(data_dir), str(server.log_path)
    return report


async def _run_with_server(config: DrillConfig, server: ServerProcess, t0: float) -> dict[str, object]:
    """The drill proper; the server is stopped at the end, however it ends (Ctrl-C included)."""
    try:
        await server.start()
        api = DrillApi(server.api, server.admin_token)
        try:
            drill = await _prepare(config, server, api, t0)
            await _run(drill, api)
            rows = await _rows(drill, api)
        finally:
            await api.aclose()
        report = _report(drill, rows, trio.current_time() - t0)
    finally:
        with trio.CancelScope(shield=True):
            await server.stop()
        server.close()
    return report


def _data_dir(given: Path | None) -> tuple[Path, bool]:
    """The server's data directory (fresh: the drill creates its product) and whether it is ours to delete."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="fleetsim-drill-")) / "data", True
    if given.exists() and any(given.iterdir()):
        raise DrillConfigError(f"--server-data {given} is not empty: a drill starts from a fresh data directory")
    given.mkdir(parents=True, exist_ok=True)
    return given, False


async def _prepare(config: DrillConfig, server: ServerProcess, api: DrillApi, t0: float) -> Drill:
    identities = [DeviceIdentity.generate() for _ in range(config.devices)]
    p = config.product_id
    await api.register_keys(identities)
    await api.create_product(p, f"Drill {p}")
    await api.preadd(p, identities)
    for version in (OLD, NEW):
        await api.upload_firmware(p, version, firmware.build(p, version, config.size, seed=config.seed))
    await api.release_default(p, OLD)  # the fleet runs the released version before the rollout
    mix = parse_mix(config.mix)
    profiles = assign_profiles(config.devices, mix, config.seed, config.size, config.late_window, config.reboot_delay)
    devices = [
        DrillDevice(identity, profile, OLD, t0, random.Random(f"{config.seed}/{i}"))
        for i, (identity, profile) in enumerate(zip(identities, profiles, strict=True))
    ]
    bars = StateBars(config.devices, enabled=config.progress)
    return Drill(config, server, devices, t0, bars)


async def _run(drill: Drill, api: DrillApi) -> None:
    config = drill.config
    endpoint = Endpoint(
        "127.0.0.1",
        drill.server.device_port,
        parse_public_key(drill.server.public_key_path.read_text().strip()),
        config.product_id,
    )
    limiter = trio.CapacityLimiter(HANDSHAKES_AT_ONCE)
    rollout_started = trio.Event()
    deadline = drill.t0 + config.timeout
    async with trio.open_nursery() as fleet:
        for device in drill.devices:
            fleet.start_soon(device.run, endpoint, limiter, rollout_started)
        try:
            on_time = [d for d in drill.devices if d.profile.late_by is None]
            with trio.move_on_at(min(deadline, drill.t0 + config.timeout * CONNECT_SHARE)):
                for i, device in enumerate(on_time):
                    await device.connected.wait()
                    drill.bars.update({"pending": i + 1}, f"connecting: {i + 1}/{len(on_time)} on time")
            online = sum(d.connected.is_set() for d in on_time)
            drill.bars.update({"pending": online}, f"connecting: {online}/{len(on_time)} on time", force=True)
            drill.bars.message(f"fleet online: {online}/{len(on_time)} on time")
            drill.rollout = rollout = await api.create_rollout(config.product_id, config.rollout_body(NEW))
            drill.rollout_started_s = drill.now()
            drill.series.append(Sample(drill.now(), str(rollout["state"]), dict(rollout["counts"])))
            rollout_started.set()
            with trio.move_on_at(deadline) as scope:
                await _watch(drill, api)
            drill.timed_out = scope.cancelled_caught
        finally:
            fleet.cancel_scope.cancel()  # every device says goodbye (bounded) and stops


async def _watch(drill: Drill, api: DrillApi) -> None:
    """Poll until the rollout ends or pauses; restart the server once when asked."""
    assert drill.rollout is not None
    config, rid = drill.config, int(drill.rollout["id"])
    while True:
        rollout = await _poll(drill, api, rid)
        if rollout is not None:
            state, counts = str(rollout["state"]), rollout["counts"]
            total = int(rollout["target"]["devices"]) or 1
            due = config.restart_at is not None and counts["confirmed"] >= config.restart_at * total
            if due and not drill.restarts:
                await _restart(drill)
                continue
            kills = config.kill_at
            if len(drill.kills) < len(kills) and counts["confirmed"] >= kills[len(drill.kills)] * total:
                await _kill(drill)
                continue
            if state in FINISHED:
                return
            if state == "paused":
                await _settle(drill, api, rid)
                return
        elif not drill.server.running:
            drill.notes.append(Check("server alive", False, f"the server exited (log: {drill.server.log_path})"))
            return
        await trio.sleep(POLL)


async def _poll(drill: Drill, api: DrillApi, rid: int) -> dict[str, Any] | None:
    """One sample of the rollout, or None while the server does not answer (a restart)."""
    try:
        rollout = await api.rollout(drill.config.product_id, rid)
    except httpx.HTTPError:
        return None
    drill.rollout = rollout
    drill.series.append(Sample(drill.now(), str(rollout["state"]), dict(rollout["counts"])))
    headline = f"rollout {rid}: {rollout['state']} (stage {int(rollout['current_stage']) + 1}), {drill.now():.1f} s"
    drill.bars.update(rollout["counts"], headline, force=rollout["state"] in FINISHED)
    return rollout


async def _restart(drill: Drill) -> None:
    drill.restarts.append(drill.now())
    drill.bars.message(f"restarting the server at {drill.now():.1f} s ...")
    code = await drill.server.stop()
    if code != 0:
        drill.notes.append(Check("server stopped cleanly", False, f"exit code {code} on SIGINT"))
    await drill.server.start()
    drill.bars.message(f"server back at {drill.now():.1f} s")


async def _kill(drill: Drill) -> None:
    """kill -9, as a crash or a power cut: no shutdown, no goodbyes; then start it again."""
    drill.kills.append(drill.now())
    drill.bars.message(f"killing the server (SIGKILL) at {drill.now():.1f} s ...")
    await drill.server.kill()
    await drill.server.start()
    drill.bars.message(f"server back at {drill.now():.1f} s")


async def _settle(drill: Drill, api: DrillApi, rid: int) -> None:
    """Paused: transfers in flight may still finish; give them a bounded while."""
    with trio.move_on_after(SETTLE_LIMIT):
        while True:
            rollout = await _poll(drill, api, rid)
            if rollout is not None and not any(rollout["counts"][s] for s in ("offered", "downloading", "installed")):
                return
            await trio.sleep(POLL)


async def _rows(drill: Drill, api: DrillApi) -> dict[str, dict[str, Any]]:
    if drill.rollout is None:
        return {}
    rid = int(drill.rollout["id"])
    with trio.move_on_after(30):
        while True:
            try:
                drill.rollout = await api.rollout(drill.config.product_id, rid)
                return {row["id"]: row for row in await api.rollout_devices(drill.config.product_id, rid)}
            except httpx.HTTPError:
                await trio.sleep(POLL)
    drill.notes.append(Check("per-device states", False, "the server did not list the rollout's devices"))
    return {}


def _report(drill: Drill, rows: Mapping[str, dict[str, Any]], elapsed: float) -> dict[str, object]:
    config = drill.config
    exp = Expectation(config.expect, OLD, NEW, config.retries, config.size, config.restart_at, config.on_error)
    facts: list[DeviceFacts] = []
    entries = []
    for d in drill.devices:
        f = facts_from_timeline(
            d.device_id, d.profile.fault, d.profile.late_by is not None, d.version, d.first_status,
            d.bytes_by_version, d.timeline,
        )  # fmt: skip
        facts.append(f)
        row = rows.get(d.device_id)
        entries.append(device_entry(f, row, d.timeline, d.connects, NEW, device_problem(f, row, exp)))
    checks = [
        *rollout_checks(drill.rollout, exp, facts, len(drill.restarts), drill.timed_out),
        *device_checks(facts, rows, exp),
        *drill.notes,
    ]
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    settings["rollout_body"] = config.rollout_body(NEW)
    report = build_report(
        settings, drill.rollout, entries, drill.series, drill.restarts, checks, elapsed, drill.rollout_started_s
    )
    report["server_kills_s"] = list(drill.kills)
    return report
