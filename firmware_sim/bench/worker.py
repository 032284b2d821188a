"""A load worker: one process, one trio.run, a share of the fleet as LeanDevices.

The parent (pool.py) sends commands over a pipe and waits for each answer:

    prepare {start, stop, product_id, firmware_version}   build message 1 for devices [start, stop)
    connect {start, stop, start_at, interval, concurrency, timeout, sources}
                        connect them (all at once from start_at, or one every `interval` s);
                        answers when each has finished its handshake or failed; they stay online
    publish {count, start_at, duration, window, payload, drain}
                        the first `count` online devices publish acked events as fast as the
                        window allows; answers with counts and ack latencies
    ota_reset / ota_wait {expect, timeout}   forget / wait for `expect` completed transfers
    count               how many devices are online and privileged, per port (cluster nodes)
    trim {keep}         goodbye on every online device beyond the first `keep`
    retry {ports, limit, sources}   the devices whose connect failed try again (as revive)
    revive {dead, ports, limit, sources}
                        the devices that were on port `dead` (a node killed): each, once its link
                        ended, connects again to one of `ports`, retrying (0.5-2 s apart) until `limit` s have passed
    close               goodbye and close every device
    exit

Every device that completed its handshake pings at the interval its WELCOME gave, from one
timer per worker (devices are pinged in the order they came online, spread as they connected).
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

import trio

from protocol.noise import KeyPair

from .lean import DeviceStats, LeanDevice, publish_frames
from .machine import pin

ATTEMPT_LIMIT = 30.0  # seconds one reconnect attempt may take (TCP connect + handshake) before the next


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    host: str
    port: int
    server_public_key: bytes
    identities: list[tuple[bytes, bytes]]  # (device_id, private key)
    cores: frozenset[int] | None = None
    ports: tuple[int, ...] = ()  # several nodes: device i of this worker connects to ports[(i + index) % len]


def worker_main(spec: WorkerSpec, pipe: Pipe) -> None:
    """Process entry point (multiprocessing, spawn)."""
    pin(spec.cores)
    try:
        trio.run(_Worker(spec, pipe).run)
    except KeyboardInterrupt:
        pass
    finally:
        pipe.close()


class _Worker:
    def __init__(self, spec: WorkerSpec, pipe: Pipe) -> None:
        self.spec = spec
        self.pipe = pipe
        self.devices = [LeanDevice(i, did, KeyPair(priv)) for i, (did, priv) in enumerate(spec.identities)]
        self.online: list[LeanDevice] = []
        self.heartbeats: deque[tuple[float, LeanDevice]] = deque()
        self.beat = trio.Event()
        self.stats = DeviceStats()
        self.nursery: trio.Nursery | None = None
        self.port_of: dict[int, int] = {}  # device index -> the port it connected to
        self._product_id: int | None = None  # the product the devices say they run (from prepare)
        self.failed: list[LeanDevice] = []  # devices whose connect failed (for `retry`)

    def _port(self, device: LeanDevice) -> int:
        ports = self.spec.ports
        return ports[(device.index + self.spec.index) % len(ports)] if ports else self.spec.port

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self._heartbeat)
            while True:
                command, args = await trio.to_thread.run_sync(self.pipe.recv, abandon_on_cancel=True)
                if command == "exit":
                    await self._close()
                    self.pipe.send({})
                    nursery.cancel_scope.cancel()
                    return
                handler = getattr(self, f"_cmd_{command}")
                answer = await handler(**args)
                await trio.to_thread.run_sync(self.pipe.send, answer)

    # ------------------------------------------------------------------ commands

    async def _cmd_prepare(
        self, start: int, stop: int, product_id: int | None, firmware_version: int
    ) -> dict[str, Any]:
        t0 = time.process_time()
        key = self.spec.server_public_key
        self._product_id = product_id
        for i, device in enumerate(self.devices[start:stop]):
            device.prepare(key, product_id, firmware_version)
            if i % 200 == 199:
                await trio.lowlevel.checkpoint()
        return {"prepared": stop - start, "cpu_s": time.process_time() - t0}

    async def _cmd_connect(
        self, start: int, stop: int, start_at: float, interval: float, concurrency: int | None, limit: float,
        sources: list[str],
    ) -> dict[str, Any]:  # fmt: skip
        devices = self.devices[start:stop]
        limiter = trio.CapacityLimiter(concurrency) if concurrency else None
        results: list[tuple[float, float, str]] = [(0.0, 0.0, "not started")] * len(devices)
        done = trio.Event()
        remaining = [len(devices)]
        assert self.nursery is not None
        await trio.sleep(max(0.0, start_at - time.monotonic()))
        for i, device in enumerate(devices):
            if interval:
                await trio.sleep(max(0.0, start_at + i * interval - time.monotonic()))
            source = sources[(device.index + self.spec.index) % len(sources)] if sources else None
            self.nursery.start_soon(self._device, device, i, source, limiter, limit, results, remaining, done)
        if devices:
            await done.wait()
        return {"results": results}

    async def _device(
        self, device: LeanDevice, slot: int, source: str | None, limiter: trio.CapacityLimiter | None,
        limit: float, results: list[tuple[float, float, str]], remaining: list[int], done: trio.Event,
    ) -> None:  # fmt: skip
        started = time.monotonic()
        error = ""
        port = self.port_of[device.index] = self._port(device)
        try:
            with trio.fail_after(limit):
                if limiter is not None:
                    async with limiter:
                        started = time.monotonic()
                        await device.handshake(self.spec.host, port, source)
                else:
                    await device.handshake(self.spec.host, port, source)
            if not device.privileged:
                error = f"not privileged: {device.welcome}"
        except trio.TooSlowError:
            error = f"timed out after {limit:g} s"
        except OSError as exc:
            error = f"OSError errno {exc.errno}: {exc.strerror}"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        welcomed = time.monotonic() if device.welcome is not None else 0.0
        results[slot] = (started, welcomed, error)
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set()
        if error:
            self.failed.append(device)
        if device.welcome is None:
            if device.stream is not None:
                await trio.aclose_forcefully(device.stream)
                device.stream = None
            return
        self.online.append(device)
        self.heartbeats.append((welcomed + device.welcome.heartbeat_interval, device))
        self.beat.set()
        await device.read(self.stats)

    async def _heartbeat(self) -> None:
        while True:
            if not self.heartbeats:
                self.beat = trio.Event()
                await self.beat.wait()
                continue
            due, device = self.heartbeats[0]
            await trio.sleep(max(0.0, due - time.monotonic()))
            if not self.heartbeats or self.heartbeats[0][1] is not device:
                continue  # the fleet was closed (the queue cleared) while we slept
            self.heartbeats.popleft()
            if device.stream is None or device.closed is not None or device.welcome is None:
                continue
            try:
                await device.ping()
            except Exception as exc:
                device.closed = f"ping failed: {exc}"
                continue
            self.heartbeats.append((due + device.welcome.heartbeat_interval, device))

    async def _cmd_publish(
        self, count: int, start_at: float, duration: float, window: int, payload: int, drain: float, messages: int = 0
    ) -> dict[str, Any]:
        """`messages` > 0: each publisher sends that many and stops (duration is then a limit)."""
        publishers = [d for d in self.online if d.closed is None][:count]
        stats = self.stats
        stats.reset()
        await trio.sleep(max(0.0, start_at - time.monotonic()))
        stats.first_send = time.monotonic()
        end = stats.first_send + duration
        async with trio.open_nursery() as nursery:
            for device in publishers:
                nursery.start_soon(self._publisher, device, end, window, payload, stats, messages)
        with trio.move_on_after(drain):  # the acks still in flight
            while any(d.inflight for d in publishers if d.closed is None):  # noqa: ASYNC110
                await trio.sleep(0.02)
        unacked = sum(len(d.inflight) for d in publishers)
        closed = [d.closed for d in publishers if d.closed is not None]
        return {
            "publishers": len(publishers), "sent": stats.sent, "accepted": stats.accepted, "slowed": stats.slowed,
            "unacked": unacked, "first_send": stats.first_send, "last_ack": stats.last_ack,
            "ack_latencies": stats.ack_latencies, "closed": closed[:10], "closed_count": len(closed),
        }  # fmt: skip

    async def _publisher(
        self, device: LeanDevice, end: float, window: int, payload: int, stats: DeviceStats, messages: int
    ) -> None:
        left = messages if messages > 0 else -1
        while device.closed is None and time.monotonic() < end and left != 0:
            free = window - len(device.inflight)
            if left > 0:
                free = min(free, left)
                left -= max(0, free)
            if free > 0:
                try:
                    await device.send(publish_frames(device, free, payload, stats))
                except Exception as exc:
                    device.closed = f"publish failed: {type(exc).__name__}: {exc}"
                    return
            if left == 0:
                break  # all sent: the drain waits for their acks
            device.slot = slot = trio.Event()
            if len(device.inflight) >= window:  # no checkpoint since the check: no ack slips by
                with trio.move_on_at(trio.current_time() + max(0.0, end - time.monotonic())):
                    await slot.wait()
        device.slot = None

    async def _cmd_ota_reset(self) -> dict[str, Any]:
        self.stats.transfers.clear()
        return {}

    async def _cmd_ota_wait(self, expect: int, limit: float) -> dict[str, Any]:
        with trio.move_on_after(limit):
            while len(self.stats.transfers) < expect:  # noqa: ASYNC110
                await trio.sleep(0.01)
        return {"transfers": [asdict(t) for t in self.stats.transfers]}

    async def _cmd_count(self) -> dict[str, Any]:
        per_port: dict[int, int] = {}
        for device in self.online:
            if device.closed is None and device.privileged:
                port = self.port_of.get(device.index, self.spec.port)
                per_port[port] = per_port.get(port, 0) + 1
        return {"privileged": sum(per_port.values()), "per_port": per_port}

    async def _cmd_revive(self, dead: int, ports: list[int], limit: float, sources: list[str]) -> dict[str, Any]:
        """The devices of a killed node reconnect to the others, as real devices would: each waits
        until its link has ended, then connects to the next port, again after 0.5-2 s on failure."""
        lost = [d for d in self.online if self.port_of.get(d.index) == dead]
        self.online = [d for d in self.online if self.port_of.get(d.index) != dead]
        return await self._reconnect_all(lost, ports, limit, sources, wait_closed=True)

    async def _cmd_retry(self, ports: list[int], limit: float, sources: list[str]) -> dict[str, Any]:
        """The devices that failed to come online try again, as real devices would."""
        failed, self.failed = self.failed, []
        return await self._reconnect_all(failed, ports, limit, sources, wait_closed=False)

    async def _cmd_trim(self, keep: int) -> dict[str, Any]:
        """Say goodbye on every online device beyond the first `keep`."""
        extra, self.online = self.online[keep:], self.online[:keep]
        async with trio.open_nursery() as nursery:
            for device in extra:
                nursery.start_soon(device.goodbye)
        return {"closed": len(extra)}

    async def _reconnect_all(
        self, devices: list[LeanDevice], ports: list[int], limit: float, sources: list[str], wait_closed: bool
    ) -> dict[str, Any]:
        results: list[tuple[float, float, str, int]] = []
        deadline = time.monotonic() + limit
        async with trio.open_nursery() as nursery:
            for turn, device in enumerate(devices):
                nursery.start_soon(self._reconnect, device, turn, ports, deadline, sources, wait_closed, results)
        return {"results": results}

    async def _reconnect(
        self, device: LeanDevice, turn: int, ports: list[int], deadline: float, sources: list[str],
        wait_closed: bool, results: list[tuple[float, float, str, int]],
    ) -> None:  # fmt: skip
        """Connect `device` to ports[turn], then the next, ... until privileged or `deadline`;
        (when its old link ended, privileged again or 0, the last error, attempts) into results."""
        while wait_closed and device.closed is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await trio.sleep(0.01)  # its reader sets `closed` when the link ends
        noticed = time.monotonic()
        attempts, error = 0, "no attempt"
        while time.monotonic() < deadline:
            port = ports[(turn + attempts) % len(ports)]
            attempts += 1
            if device.stream is not None:
                await trio.aclose_forcefully(device.stream)
                device.stream = None
            device.prepare(self.spec.server_public_key, self._product_id, 1)
            source = sources[(device.index + attempts) % len(sources)] if sources else None
            try:
                with trio.fail_after(max(0.01, min(ATTEMPT_LIMIT, deadline - time.monotonic()))):
                    await device.handshake(self.spec.host, port, source)
                if device.privileged and device.welcome is not None:
                    welcomed = time.monotonic()
                    self.port_of[device.index] = port
                    self.online.append(device)
                    self.heartbeats.append((welcomed + device.welcome.heartbeat_interval, device))
                    self.beat.set()
                    results.append((noticed, welcomed, "", attempts))
                    assert self.nursery is not None
                    self.nursery.start_soon(device.read, self.stats)
                    return
                error = f"not privileged: {device.welcome}"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            await trio.sleep(random.uniform(0.5, 2.0))  # jittered, as a fleet's devices back off
        if device.stream is not None:
            await trio.aclose_forcefully(device.stream)
            device.stream = None
        results.append((noticed, 0.0, error, attempts))

    async def _cmd_close(self) -> dict[str, Any]:
        closed = await self._close()
        return {"closed": closed}

    async def _close(self) -> int:
        online, self.online = self.online, []
        self.heartbeats.clear()
        async with trio.open_nursery() as nursery:
            for device in online:
                nursery.start_soon(device.goodbye)
        return len(online)
