"""The cross-node latencies of the cluster benchmark, measured with full simulated devices
(`SimDevice`, the real protocol over real sockets) while the fleet's devices are held:

- approve: POST /v1/products/:p/devices on node A -> STATUS OK at a device connected to node B;
- publish -> stream: an acked PUBLISH by a device on node B -> the event on an SSE stream at node A;
- takeover: the same device connects to the next node -> its old session closed (REPLACED) and the
  new one privileged.

With several nodes, A and B are always different nodes; with one node they are the same.
Times are trio's clock (monotonic) in the orchestrator process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from protocol.codes import AckResult, CloseReason, Status
from protocol.errors import RemoteProtocolError

from ..device import DeviceClosed, DeviceRefused, DeviceSettings, SimDevice
from ..identity import DeviceIdentity
from .stats import latency_summary, percentile

PROBE_LIMIT = 20.0  # seconds any one sample may take before the probe fails


class ProbeFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Node:
    api: str  # http://127.0.0.1:port
    port: int  # its device port


@dataclass(slots=True)
class Arrivals:
    """Event name -> when it arrived on the stream."""

    at: dict[str, float] = field(default_factory=dict)
    opened: trio.Event = field(default_factory=trio.Event)
    changed: trio.Event = field(default_factory=trio.Event)

    async def wait_for(self, name: str) -> float:
        while name not in self.at:
            await self.changed.wait()
            self.changed = trio.Event()
        return self.at[name]


async def _read_stream(client: httpx.AsyncClient, url: str, arrivals: Arrivals) -> None:
    async with client.stream("GET", url, timeout=None) as response:
        if response.status_code != 200:
            raise ProbeFailed(f"GET {url}: {response.status_code}")
        name: str | None = None
        async for line in response.aiter_lines():
            if line.startswith(":"):
                arrivals.opened.set()  # the stream's opening comment
            elif line.startswith("event: "):
                name = line[len("event: ") :]
            elif line == "" and name is not None:
                arrivals.at.setdefault(name, trio.current_time())
                arrivals.changed.set()
                name = None


async def _connect(nursery: trio.Nursery, node: Node, identity: DeviceIdentity, key: bytes, product: int) -> SimDevice:
    """A device connected to `node` and running in `nursery` (one nursery for all: no nesting)."""
    stream = await trio.open_tcp_stream("127.0.0.1", node.port)
    device = SimDevice(identity, key, DeviceSettings(product_id=product))
    with trio.fail_after(PROBE_LIMIT):
        await device.handshake(stream)
    nursery.start_soon(_run, device, stream)
    with trio.fail_after(PROBE_LIMIT):
        await device.ping()  # READY was processed: the session is registered
    return device


async def _run(device: SimDevice, stream: trio.SocketStream) -> None:
    try:
        await device.run()
    except Exception:
        pass
    finally:
        await trio.aclose_forcefully(stream)


def _ms(samples: list[float]) -> dict[str, Any]:
    """p50, p90, p99 and max in ms (nearest rank), the count, and each sample in order (ms)."""
    p90 = percentile(samples, 90.0)
    return {**latency_summary(samples), "p90_ms": None if p90 is None else round(p90 * 1000, 3),
            "count": len(samples), "samples_ms": [round(x * 1000, 1) for x in samples]}  # fmt: skip


# What one sample may fail with: counted, with its reason, while the other samples go on.
SAMPLE_ERRORS = (ProbeFailed, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, DeviceClosed,
                 DeviceRefused, RemoteProtocolError, httpx.HTTPError, OSError)  # fmt: skip


@dataclass(slots=True)
class Failures:
    by_probe: dict[str, list[str]] = field(default_factory=dict)

    def add(self, probe: str, exc: BaseException) -> None:
        self.by_probe.setdefault(probe, []).append(f"{type(exc).__name__}: {exc}"[:200])

    def summary(self) -> dict[str, Any]:
        return {k: {"count": len(v), "first": v[0]} for k, v in self.by_probe.items()}


async def run_probes(nodes: list[Node], token: str, key: bytes, identities: list[DeviceIdentity],
                     product: int) -> dict[str, Any]:  # fmt: skip
    """Each probe once per identity (devices spread over the nodes); failed samples are counted."""
    n = len(nodes)
    headers = {"Authorization": f"Bearer {token}"}
    out: dict[str, Any] = {"samples": len(identities), "cross_node": n > 1}
    failures = Failures()
    async with httpx.AsyncClient(headers=headers, timeout=PROBE_LIMIT) as client, trio.open_nursery() as running:
        homes = [k % n for k in range(len(identities))]
        devices: list[SimDevice | None] = []
        for home, ident in zip(homes, identities, strict=True):
            try:
                device = await _connect(running, nodes[home], ident, key, product)
                if device.state.status is not Status.QUARANTINED:
                    raise ProbeFailed(f"a probe device was {device.state.status} before its approval")
                devices.append(device)
            except SAMPLE_ERRORS as exc:
                failures.add("connect", exc)
                devices.append(None)

        approve: list[float] = []
        for k, (ident, dev) in enumerate(zip(identities, devices, strict=True)):
            if dev is None:
                continue
            via = nodes[(homes[k] + 1) % n]  # another node's API (the same node when there is one)
            start = trio.current_time()
            try:
                url = f"{via.api}/v1/products/{product}/devices"
                answer = await client.post(url, json={"id": ident.device_id_hex})
                if answer.status_code != 200:
                    raise ProbeFailed(f"approve: {answer.status_code} {answer.text[:200]}")
                with trio.fail_after(PROBE_LIMIT):
                    await dev.wait_status(Status.OK)
                approve.append(trio.current_time() - start)
            except SAMPLE_ERRORS as exc:
                failures.add("approve", exc)
                devices[k] = None
        out["approve_ms"] = _ms(approve)

        arrivals = Arrivals()
        publish: list[float] = []
        acks: list[float] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_stream, client, f"{nodes[0].api}/v1/products/{product}/events", arrivals)
            with trio.fail_after(PROBE_LIMIT):
                await arrivals.opened.wait()
            for k, dev in enumerate(devices):
                if dev is None or (n > 1 and homes[k] == 0):
                    continue  # a device on the stream's own node: not a cross-node sample
                name = f"probe/{k}"
                start = trio.current_time()
                try:
                    with trio.fail_after(PROBE_LIMIT):
                        if await dev.publish(name, b"1") is not AckResult.ACCEPTED:
                            raise ProbeFailed(f"publish {name} was not accepted")
                        acks.append(trio.current_time() - start)
                        publish.append(await arrivals.wait_for(name) - start)
                except SAMPLE_ERRORS as exc:
                    failures.add("publish", exc)
            nursery.cancel_scope.cancel()
        out["publish_to_stream_ms"] = _ms(publish)
        out["publish_ack_ms"] = _ms(acks)

        takeover: list[float] = []
        for k, (ident, old) in enumerate(zip(identities, devices, strict=True)):
            if old is None or old.closed is not None:
                continue
            to = nodes[(homes[k] + 1) % n]
            start = trio.current_time()
            try:
                new = await _connect(running, to, ident, key, product)
                with trio.fail_after(PROBE_LIMIT):
                    await new.wait_status(Status.OK)
                    await old.closed_event.wait()
                if old.closed is None or old.closed.reason is not CloseReason.REPLACED:
                    raise ProbeFailed(f"takeover: the old session ended with {old.closed}, not REPLACED")
                takeover.append(trio.current_time() - start)
            except SAMPLE_ERRORS as exc:
                failures.add("takeover", exc)
        out["takeover_ms"] = _ms(takeover)
        out["failures"] = failures.summary()
        running.cancel_scope.cancel()
    return out


def probe(nodes: list[Node], token: str, key: bytes, identities: list[DeviceIdentity], product: int) -> dict[str, Any]:
    """run_probes in a trio.run of its own (the orchestrator is synchronous). Raises ProbeFailed
    with the first failure inside (not a tree of exception groups)."""
    try:
        result: dict[str, Any] = trio.run(run_probes, nodes, token, key, identities, product)
    except Exception as exc:  # an exception group, most often: its first leaf says what happened
        first = _first_leaf(exc)
        raise ProbeFailed(f"{type(first).__name__}: {first}") from exc
    return result


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
