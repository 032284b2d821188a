"""`fleetsim chaos webhook-outage`: receiver down, server restarted twice (Ctrl-C, kill -9); every event arrives.

A receiver down while events are published and the server restarted twice (once cleanly, once with
`kill -9`); then the receiver comes up and every event must arrive.

A real `fleetgate serve` subprocess, simulated devices publishing over the device protocol, and a
small HTTP receiver on loopback that records each request's `Idempotency-Key` (the event ID).
Prints events published (acked), requests delivered, unique keys, duplicates, missing (must be 0)
and the time from the receiver's start to the last missing event's arrival. Exit 1 if any is missing.

    python -m firmware_sim.chaos.webhook_outage --events 200 --outage 90
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import trio

from protocol.codes import AckResult

from ..device import DeviceSettings, connect_device
from ..identity import DeviceIdentity
from ..quiet_exit import exit_code_for

PRODUCT = 4711
START_LIMIT = 30.0
KEY_HEADER = b"idempotency-key"


@dataclass(frozen=True, slots=True)
class Figures:
    published: int  # events acked by the server
    delivered: int  # requests the receiver answered 2xx
    unique_keys: int
    duplicates: int  # requests beyond the first per key
    missing: int  # published events never received
    drain_seconds: float  # receiver start to the last missing event's arrival; -1: not all came
    restarts: str
    counters: dict[str, Any] = field(default_factory=dict)  # the server's own, after the drill


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (32768 and up on Linux), so that no
    other program's outgoing or port-0 socket takes it while the server restarts."""
    for _ in range(100):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000..31999")


class Receiver:
    """HTTP/1.1 on loopback, one request per connection: records each Idempotency-Key, answers 200.
    Its port is bound from the start but not listening until `serve`: while down, connections are
    refused, and no other program can take the port meanwhile."""

    def __init__(self, answer_after: float = 0.0) -> None:
        self.answer_after = answer_after  # seconds before each answer
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.keys: list[str] = []
        self.changed = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.from_stdlib_socket(self._socket)
        sock.listen(1024)
        task_status.started()
        await trio.serve_listeners(self._handle, [trio.SocketListener(sock)])

    def close(self) -> None:
        self._socket.close()

    async def _handle(self, stream: trio.SocketStream) -> None:
        # The server may go away mid-request (killed): it will ask again.
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):
                await self._answer(stream)

    async def _answer(self, stream: trio.SocketStream) -> None:
        data = b""
        with trio.move_on_after(10):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            headers = dict(
                (name.strip().lower(), value.strip())
                for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
            )
            length = int(headers.get(b"content-length", b"0"))
            while len(body) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                body += chunk
            self.keys.append(headers.get(KEY_HEADER, b"").decode())
            self.changed.set()
            await trio.sleep(self.answer_after)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


@dataclass(slots=True)
class Serve:
    """`fleetgate serve` as a subprocess on fixed ports, so a restart comes back where it was."""

    data_dir: Path
    retry_delays: str
    device_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    proc: trio.Process | None = None
    log: IO[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    async def start(self) -> None:
        cmd = [
            sys.executable, "-m", "server.cli", "serve", "--data-dir", str(self.data_dir),
            "--device-port", str(self.device_port), "--api-port", str(self.api_port), "--log-level", "warning",
            "--webhook-allow-private", "--webhook-retry-delays", self.retry_delays,
            "--publish-rate", "1000", "--publish-burst", "1000",
        ]  # fmt: skip
        if self.log is None:
            self.log = (self.data_dir.parent / "server.log").open("ab")
        self.proc = proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE, stderr=self.log)
        assert proc.stdout is not None
        text = ""
        with trio.move_on_after(START_LIMIT):
            while "Ctrl-C" not in text:
                chunk = await proc.stdout.receive_some(4096)
                if not chunk:
                    break
                text += chunk.decode(errors="replace")
        if "Ctrl-C" not in text:
            await self.stop(signal.SIGKILL)
            log = (self.data_dir.parent / "server.log").read_text(errors="replace").strip().splitlines()
            raise RuntimeError(f"the server did not start: {text.strip() or 'no output'}; {log[-1] if log else ''}")

    async def stop(self, how: signal.Signals = signal.SIGINT) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.send_signal(how)
                with trio.move_on_after(20):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


async def setup_product(http: httpx.AsyncClient, receiver_port: int, identities: list[DeviceIdentity]) -> None:
    """Product PRODUCT with these devices as members, and webhook 1 on `reading...` to the receiver."""

    async def ok(method: str, path: str, body: dict[str, Any]) -> None:
        response = await http.request(method, path, json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")

    await ok("POST", "/v1/products", {"name": "Outage", "id": PRODUCT})
    for identity in identities:
        await ok("POST", f"/v1/provisioning/{identity.device_id_hex}", {"public_key": identity.key.public.hex()})
        await ok("POST", f"/v1/products/{PRODUCT}/devices", {"id": identity.device_id_hex})
    await ok(
        "POST", f"/v1/products/{PRODUCT}/webhooks", {"event": "reading", "url": f"http://127.0.0.1:{receiver_port}/in"}
    )


async def publish_events(server: Serve, identities: list[DeviceIdentity], events: int) -> int:
    """The devices publish `events` in all over the device protocol; how many the server acked."""
    key = bytes.fromhex((server.data_dir / "server.pub").read_text().split()[0])
    acked = 0

    async def one(index: int, identity: DeviceIdentity) -> None:
        nonlocal acked
        count = events // len(identities) + (1 if index < events % len(identities) else 0)
        stream = await trio.open_tcp_stream("127.0.0.1", server.device_port)
        async with connect_device(stream, identity, key, DeviceSettings(product_id=PRODUCT)) as device:
            for n in range(count):
                result = await device.publish(f"reading/{n}", json.dumps({"n": n}).encode())
                acked += result is AckResult.ACCEPTED

    async with trio.open_nursery() as nursery:
        for index, identity in enumerate(identities):
            nursery.start_soon(one, index, identity)
    return acked


async def run(events: int, outage: float, retry_delays: str, devices: int, work: Path, say: Any = print) -> Figures:
    """The drill; `outage`: seconds the receiver stays down after the publishing, across both restarts."""
    receiver = Receiver()
    server = Serve(work / "data", retry_delays)
    identities = [DeviceIdentity.generate() for _ in range(max(1, min(devices, events)))]
    try:
        await server.start()
        token = (server.data_dir / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=server.api, headers=headers, timeout=30) as http:
            await setup_product(http, receiver.port, identities)
            started = time.monotonic()
            published = await publish_events(server, identities, events)
            say(f"published {published} events in {time.monotonic() - started:.1f} s; the receiver is down")
            third = outage / 3
            await trio.sleep(third)
            await server.stop(signal.SIGINT)
            await server.start()
            say(f"restarted cleanly (Ctrl-C) after {third:.0f} s")
            await trio.sleep(third)
            await server.stop(signal.SIGKILL)
            await server.start()
            say(f"restarted after kill -9 {third:.0f} s later")
            await trio.sleep(third)
            async with trio.open_nursery() as nursery:
                await nursery.start(receiver.serve)
                up = time.monotonic()
                say("the receiver is up")
                drained = await _wait_for_all(receiver, published, limit=max(120.0, outage))
                drain = time.monotonic() - up
                await trio.sleep(1.0)  # late duplicates still count
                nursery.cancel_scope.cancel()
            response = await http.get(f"/v1/products/{PRODUCT}/webhooks/1/deliveries")
            counters = response.json().get("counters", {}) if response.status_code == 200 else {}
    finally:
        await server.stop(signal.SIGINT)
        server.close()
        receiver.close()
    seen = Counter(receiver.keys)
    return Figures(published, len(receiver.keys), len(seen), sum(n - 1 for n in seen.values()),
                   max(0, published - len(seen)), round(drain, 1) if drained else -1.0,
                   "Ctrl-C, then kill -9", counters)  # fmt: skip


async def _wait_for_all(receiver: Receiver, expected: int, limit: float) -> bool:
    with trio.move_on_after(limit):
        while len(set(receiver.keys)) < expected:
            await receiver.changed.wait()
            receiver.changed = trio.Event()
        return True
    return False


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside nested groups (a nursery wraps what its task raised)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fleetsim chaos webhook-outage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="events to publish (default 200)")
    parser.add_argument("--outage", type=float, default=90.0, help="seconds the receiver stays down (default 90)")
    parser.add_argument("--devices", type=int, default=20, help="publishing devices (default 20)")
    parser.add_argument(
        "--retry-delays", default="5,10,30", help="the server's --webhook-retry-delays (default 5,10,30)"
    )
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.events < 1 or args.outage < 0:
        print("webhook-outage: --events must be at least 1 and --outage at least 0", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fleetgate-outage-") as work:
        try:
            figures = trio.run(run, args.events, args.outage, args.retry_delays, args.devices, Path(work))
        except BaseException as exc:
            if (code := exit_code_for(exc)) is not None:
                return code
            cause = _leaf(exc)
            if not isinstance(cause, RuntimeError | OSError | httpx.HTTPError):
                raise
            print(f"webhook-outage: {cause}", file=sys.stderr)
            return 1
    for name, value in asdict(figures).items():
        print(f"{name:>14}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(figures), indent=2) + "\n")
    return 0 if figures.missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
