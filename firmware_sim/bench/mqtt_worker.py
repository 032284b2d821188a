"""A load worker for the MQTT peers: lean MQTT clients (mqtt.py) over TCP or mutual TLS.

Commands from the parent, as worker.py: prepare, connect, publish, subscribe, sub_reset,
sub_wait, close, exit. One worker of the pool holds only the subscriber.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

import trio

from . import mqtt
from .machine import pin

TOPIC = "bench/e"


@dataclass(frozen=True, slots=True)
class MqttSpec:
    index: int
    host: str
    port: int
    ca: str | None  # None: plain TCP
    clients: list[tuple[str, str | None, str | None]]  # (client id, certificate, key)
    cores: frozenset[int] | None = None


class _Client:
    __slots__ = ("cid", "closed", "context", "decoder", "inflight", "next_id", "pending", "sending", "slot", "stream")

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.context: ssl.SSLContext | None = None
        self.stream: trio.abc.Stream | None = None
        self.decoder = mqtt.Decoder()
        self.inflight: dict[int, float] = {}
        self.next_id = 0
        self.closed: str | None = None
        self.slot: trio.Event | None = None
        self.sending = False
        self.pending: list[bytes] = []

    async def send(self, data: bytes) -> None:
        if self.sending:
            self.pending.append(data)
            return
        assert self.stream is not None
        self.sending = True
        try:
            while True:
                await self.stream.send_all(data)
                if not self.pending:
                    return
                data = b"".join(self.pending)
                self.pending.clear()
        finally:
            self.sending = False


def mqtt_worker_main(spec: MqttSpec, pipe: Pipe) -> None:
    pin(spec.cores)
    try:
        trio.run(_MqttWorker(spec, pipe).run)
    except KeyboardInterrupt:
        pass
    finally:
        pipe.close()


class _MqttWorker:
    def __init__(self, spec: MqttSpec, pipe: Pipe) -> None:
        self.spec = spec
        self.pipe = pipe
        self.clients = [_Client(cid) for cid, _, _ in spec.clients]
        self.nursery: trio.Nursery | None = None
        self.accepted = 0
        self.latencies: list[float] = []
        self.last_ack = 0.0
        self.received = 0
        self.sub_latencies: list[float] = []
        self.sub_last = 0.0

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            while True:
                command, args = await trio.to_thread.run_sync(self.pipe.recv, abandon_on_cancel=True)
                if command == "exit":
                    await self._cmd_close()
                    self.pipe.send({})
                    nursery.cancel_scope.cancel()
                    return
                answer = await getattr(self, f"_cmd_{command}")(**args)
                await trio.to_thread.run_sync(self.pipe.send, answer)

    def _context(self, cert: str | None, key: str | None) -> ssl.SSLContext | None:
        if self.spec.ca is None:
            return None
        context = ssl.create_default_context(cafile=self.spec.ca)
        if cert is not None and key is not None:
            context.load_cert_chain(cert, key)
        return context

    async def _cmd_prepare(self) -> dict[str, Any]:
        t0 = time.process_time()
        for client, (_, cert, key) in zip(self.clients, self.spec.clients, strict=True):
            client.context = self._context(cert, key)
            await trio.lowlevel.checkpoint()
        return {"cpu_s": time.process_time() - t0}

    async def _open(self, client: _Client, source: str | None) -> None:
        stream: trio.abc.Stream = await trio.open_tcp_stream(self.spec.host, self.spec.port, local_address=source)
        if client.context is not None:
            tls = trio.SSLStream(stream, client.context, server_hostname="127.0.0.1")
            await tls.do_handshake()
            stream = tls
        client.stream = stream
        await stream.send_all(mqtt.connect(client.cid))
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise mqtt.MqttError("closed before CONNACK")
            for kind, _, body in client.decoder.feed(data):
                if kind != mqtt.CONNACK:
                    raise mqtt.MqttError(f"packet {kind} before CONNACK")
                if len(body) < 2 or body[1] != 0:
                    raise mqtt.MqttError(f"CONNACK refused: {body.hex()}")
                return

    async def _cmd_connect(self, count: int, start_at: float, limit: float, sources: list[str]) -> dict[str, Any]:
        clients = self.clients[:count]
        results: list[tuple[float, float, str]] = [(0.0, 0.0, "")] * len(clients)
        remaining = [len(clients)]
        done = trio.Event()
        assert self.nursery is not None
        await trio.sleep(max(0.0, start_at - time.monotonic()))
        for i, client in enumerate(clients):
            source = sources[(i + self.spec.index) % len(sources)] if sources else None
            self.nursery.start_soon(self._connect_one, client, i, source, limit, results, remaining, done)
        if clients:
            await done.wait()
        return {"results": results}

    async def _connect_one(
        self, client: _Client, i: int, source: str | None, limit: float,
        results: list[tuple[float, float, str]], remaining: list[int], done: trio.Event,
    ) -> None:  # fmt: skip
        started, error = time.monotonic(), ""
        try:
            with trio.fail_after(limit):
                await self._open(client, source)
        except trio.TooSlowError:
            error = f"timed out after {limit:g} s"
        except OSError as exc:
            error = f"OSError errno {exc.errno}: {exc.strerror}"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        results[i] = (started, time.monotonic(), error)
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set()
        if error:
            client.closed = error
            return
        await self._read(client)

    async def _read(self, client: _Client) -> None:
        stream = client.stream
        assert stream is not None
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    client.closed = "closed by the broker"
                    return
                now = time.monotonic()
                for kind, flags, body in client.decoder.feed(data):
                    if kind == mqtt.PUBACK:
                        sent = client.inflight.pop(int.from_bytes(body[:2], "big"), None)
                        if sent is not None:
                            self.accepted += 1
                            self.latencies.append(now - sent)
                            self.last_ack = now
                        if client.slot is not None:
                            client.slot.set()
                    elif kind == mqtt.PUBLISH:
                        _, payload = mqtt.publish_payload(body, flags)
                        self.received += 1
                        digits = payload.split(b".", 1)[0]
                        if digits.isdigit():
                            self.sub_latencies.append(now - int(digits) / 1e9)
                        self.sub_last = now
        except Exception as exc:
            client.closed = f"{type(exc).__name__}: {exc}"
        finally:
            if client.slot is not None:
                client.slot.set()

    async def _cmd_publish(
        self, messages: int, window: int, payload: int, start_at: float, drain: float, retain: bool = False
    ) -> dict[str, Any]:
        self.accepted, self.latencies, self.last_ack = 0, [], 0.0
        live = [c for c in self.clients if c.closed is None and c.stream is not None]
        await trio.sleep(max(0.0, start_at - time.monotonic()))
        first = time.monotonic()
        sent = [0]
        with trio.move_on_after(drain + 600):
            async with trio.open_nursery() as nursery:
                for client in live:
                    nursery.start_soon(self._publisher, client, messages, window, payload, sent, retain)
        with trio.move_on_after(drain):
            while any(c.inflight for c in live if c.closed is None):  # noqa: ASYNC110
                await trio.sleep(0.02)
        return {"publishers": len(live), "sent": sent[0], "accepted": self.accepted, "first_send": first,
                "last_ack": self.last_ack, "ack_latencies": self.latencies,
                "unacked": sum(len(c.inflight) for c in live),
                "closed": [c.closed for c in live if c.closed][:5]}  # fmt: skip

    async def _publisher(
        self, client: _Client, messages: int, window: int, payload: int, sent: list[int], retain: bool
    ) -> None:
        left = messages
        while left > 0 and client.closed is None:
            free = min(left, window - len(client.inflight))
            if free > 0:
                out = []
                for _ in range(free):
                    client.next_id = client.next_id % 65535 + 1
                    now = time.monotonic_ns()
                    client.inflight[client.next_id] = now / 1e9
                    out.append(mqtt.publish(TOPIC, str(now).encode().ljust(payload, b"."), 1, client.next_id, retain))
                left -= free
                sent[0] += free
                try:
                    await client.send(b"".join(out))
                except Exception as exc:
                    client.closed = f"{type(exc).__name__}: {exc}"
                    return
            if left == 0:
                break  # all sent: the drain waits for their acks
            client.slot = slot = trio.Event()
            if len(client.inflight) >= window:  # no checkpoint since the check: no ack slips by
                await slot.wait()
        client.slot = None

    async def _cmd_subscribe(self, limit: float, sources: list[str]) -> dict[str, Any]:
        cid, cert, key = self.spec.clients[0]
        client = _Client(cid)
        client.context = self._context(cert, key)
        with trio.fail_after(limit):
            await self._open(client, sources[0] if sources else None)
            assert client.stream is not None
            await client.stream.send_all(mqtt.subscribe(1, "bench/#", 0))
            while True:
                data = await client.stream.receive_some(65536)
                if not data:
                    raise mqtt.MqttError("closed before SUBACK")
                if any(kind == mqtt.SUBACK for kind, _, _ in client.decoder.feed(data)):
                    break
        self.clients.append(client)
        assert self.nursery is not None
        self.nursery.start_soon(self._read, client)
        return {}

    async def _cmd_sub_reset(self) -> dict[str, Any]:
        self.received, self.sub_latencies, self.sub_last = 0, [], 0.0
        return {}

    async def _cmd_sub_wait(self, expect: int, quiet: float) -> dict[str, Any]:
        quiet_since, seen = time.monotonic(), self.received
        while self.received < expect and time.monotonic() - quiet_since < quiet:
            await trio.sleep(0.05)
            if self.received != seen:
                quiet_since, seen = time.monotonic(), self.received
        return {"count": self.received, "latencies": self.sub_latencies, "last_at": self.sub_last}

    async def _cmd_close(self) -> dict[str, Any]:
        closed = 0
        for client in self.clients:
            if client.stream is not None:
                if client.closed is None:
                    with trio.move_on_after(2):
                        with contextlib.suppress(Exception):  # the broker may be gone already
                            await client.stream.send_all(mqtt.disconnect())
                await trio.aclose_forcefully(client.stream)
                client.stream = None
                closed += 1
        return {"closed": closed}
