"""A lean benchmark device: the real protocol.Connection over a Trio socket, and nothing else.

SimDevice (firmware_sim/device.py) is built for behaviour tests: per-request events, a send
lock, a flash, observers, a heartbeat task per device. Here thousands of devices share one
process and one core, so each device is one reader task and a few attributes:

* message 1 (preamble, e, s, HELLO) is computed before the timed phase (`prepare`): it depends
  only on keys the device already holds and its HELLO, so a device can build it while idle. At
  connect time the device does only what it cannot do early: read WELCOME (two X25519 DH) and
  send READY;
* writes are coalesced without a lock: frames are encrypted in call order (nonce order) and
  appended to a buffer that whichever task is already writing flushes;
* heartbeats come from one timer per worker process (see worker.py), not a task per device.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import trio

from protocol.codes import AckResult, CloseReason, OtaResult, Privilege, Status
from protocol.connection import Connection, ConnectionClosed, NeedData, Refused, Role
from protocol.messages import (
    Goodbye,
    Hello,
    Message,
    OtaAbort,
    OtaChunk,
    OtaOffer,
    Ping,
    Pong,
    Publish,
    PublishAck,
    Ready,
    StatusUpdate,
    Welcome,
)
from protocol.noise import KeyPair
from protocol.ota import ImageReceiver, ReceiverState

from ..identity import CounterSource

RX_MAX_FRAME = 65535  # as SimDevice: the largest OTA chunks
PRODUCT_PRIVILEGES = Privilege.OTA | Privilege.PRODUCT_EVENTS
_COUNTERS = CounterSource()


class Closed(Exception):
    pass


@dataclass(slots=True)
class OtaRecord:
    """One transfer as the device saw it (monotonic seconds)."""

    device: int
    version: int
    size: int
    offered_at: float
    done_at: float = 0.0
    received: int = 0
    status: str = ""


@dataclass(slots=True, eq=False)
class LeanDevice:
    index: int
    device_id: bytes
    key: KeyPair
    conn: Connection | None = None
    hello_bytes: bytes = b""
    stream: trio.SocketStream | None = None
    welcome: Welcome | None = None
    closed: str | None = None
    # writes
    sending: bool = False
    pending: list[bytes] = field(default_factory=list)
    # publishes
    seq: int = 0
    inflight: dict[int, float] = field(default_factory=dict)
    slot: trio.Event | None = None
    # OTA
    receiver: ImageReceiver | None = None
    transfer: OtaRecord | None = None

    def prepare(self, server_public_key: bytes, product_id: int | None, firmware_version: int) -> None:
        """Build the Connection and message 1 now, with a fresh ephemeral key and counter."""
        self.conn = Connection(
            Role.CLIENT,
            self.key,
            server_public_key=server_public_key,
            rx_max_frame=RX_MAX_FRAME,
            ephemeral=KeyPair.generate(),
        )
        hello = Hello(
            device_id=self.device_id,
            product_id=product_id,
            firmware_version=firmware_version,
            platform_id=6,
            counter=_COUNTERS.next(),
            rx_max_frame=RX_MAX_FRAME,
        )
        self.hello_bytes = self.conn.send(hello)
        self.welcome, self.closed, self.seq = None, None, 0
        self.inflight.clear()
        self.pending.clear()
        self.sending = False
        self.receiver, self.transfer = None, None

    @property
    def privileged(self) -> bool:
        w = self.welcome
        return w is not None and w.status is Status.OK and PRODUCT_PRIVILEGES in w.privileges

    async def handshake(self, host: str, port: int, source: str | None) -> None:
        """TCP connect, message 1 (prepared), WELCOME, READY."""
        assert self.conn is not None and self.hello_bytes
        self.stream = await trio.open_tcp_stream(host, port, local_address=source)
        await self.stream.send_all(self.hello_bytes)
        event = await self.next_event()
        if isinstance(event, Refused):
            raise Closed("refused")
        if not isinstance(event, Welcome):
            raise Closed(f"{type(event).__name__} instead of WELCOME")
        self.welcome = event
        await self.stream.send_all(self.conn.send(Ready()))

    async def next_event(self) -> Message | Refused | ConnectionClosed:
        conn, stream = self.conn, self.stream
        assert conn is not None and stream is not None
        while True:
            event = conn.next_event()
            if not isinstance(event, NeedData):
                return event
            conn.receive_data(await stream.receive_some(65536))

    async def send(self, data: bytes) -> None:
        """Write `data` (already encrypted, in order). If another task is writing, hand it over."""
        if self.sending:
            self.pending.append(data)
            return
        stream = self.stream
        assert stream is not None
        self.sending = True
        try:
            while True:
                await stream.send_all(data)
                if not self.pending:
                    return
                data = b"".join(self.pending)
                self.pending.clear()
        finally:
            self.sending = False

    async def send_message(self, message: Message) -> None:
        assert self.conn is not None
        await self.send(self.conn.send(message))

    async def ping(self) -> None:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        await self.send_message(Ping(self.seq))

    # ------------------------------------------------------------------ the reader

    async def read(self, stats: DeviceStats) -> None:
        """Until the link ends: acks retire publishes, OTA offers are taken and completed."""
        try:
            while True:
                event = await self.next_event()
                if isinstance(event, PublishAck):
                    sent = self.inflight.pop(event.seq, None)
                    if sent is not None:
                        if event.result is AckResult.ACCEPTED:
                            stats.accepted += 1
                            stats.ack_latencies.append(time.monotonic() - sent)
                        else:
                            stats.slowed += 1
                        stats.last_ack = time.monotonic()
                    if self.slot is not None:
                        self.slot.set()
                elif isinstance(event, OtaChunk | OtaOffer | OtaAbort):
                    await self._ota(event, stats)
                elif isinstance(event, Ping):
                    await self.send_message(Pong(event.seq))
                elif isinstance(event, Goodbye):
                    self.closed = f"goodbye {event.reason.name.lower()}"
                    return
                elif isinstance(event, ConnectionClosed | Refused):
                    self.closed = "closed by the server"
                    return
                elif isinstance(event, Pong | StatusUpdate):
                    pass
        except Exception as exc:  # any failure ends this device only; the worker reports it
            self.closed = f"{type(exc).__name__}: {exc}"
        finally:
            if self.slot is not None:
                self.slot.set()

    async def _ota(self, message: OtaOffer | OtaChunk | OtaAbort, stats: DeviceStats) -> None:
        if isinstance(message, OtaOffer):
            fresh = self.receiver = ImageReceiver()
            fresh.offer(message)
            self.transfer = OtaRecord(self.index, message.version, message.size, time.monotonic())
            await self.send_message(fresh.accept())
            return
        receiver, record = self.receiver, self.transfer
        if receiver is None or record is None:
            return
        if isinstance(message, OtaAbort):
            receiver.abort(message)
            record.status, record.done_at = f"aborted {message.reason.name.lower()}", time.monotonic()
            stats.transfers.append(record)
            return
        result = receiver.receive_chunk(message)
        if result.store:
            record.received += len(message.data)
        replies = [m for m in (result.ack, result.complete) if m is not None]
        if receiver.state is ReceiverState.VERIFYING:
            replies.append(receiver.verify())  # the running SHA-256 against the offer's
        if replies:
            await self.send(b"".join(self.conn.send(m) for m in replies))  # type: ignore[union-attr]
        for reply in replies:
            status = getattr(reply, "status", None)
            if isinstance(status, OtaResult):
                record.status, record.done_at = status.name.lower(), time.monotonic()
                stats.transfers.append(record)

    async def goodbye(self) -> None:
        if self.stream is None:
            return
        if self.closed is None and self.conn is not None:
            with contextlib.suppress(Exception):  # the link may already be gone; closing is all that is left
                await self.send_message(Goodbye(CloseReason.NORMAL))
        await trio.aclose_forcefully(self.stream)
        self.stream = None


@dataclass(slots=True)
class DeviceStats:
    """What a worker's devices saw, gathered per command."""

    accepted: int = 0
    slowed: int = 0
    sent: int = 0
    first_send: float = 0.0
    last_ack: float = 0.0
    ack_latencies: list[float] = field(default_factory=list)
    transfers: list[OtaRecord] = field(default_factory=list)

    def reset(self) -> None:
        """Start counting afresh (the readers keep this object: it is reset, not replaced)."""
        self.accepted = self.slowed = self.sent = 0
        self.first_send = self.last_ack = 0.0
        self.ack_latencies = []


def publish_frames(device: LeanDevice, count: int, payload: int, stats: DeviceStats) -> bytes:
    """`count` PUBLISH frames; each event's data starts with its send time (monotonic ns, ASCII)
    so the subscriber can tell the end-to-end latency."""
    conn = device.conn
    assert conn is not None
    out = []
    for _ in range(count):
        device.seq = (device.seq + 1) & 0xFFFFFFFF
        now = time.monotonic_ns()
        data = str(now).encode().ljust(payload, b".")
        device.inflight[device.seq] = now / 1e9
        out.append(conn.send(Publish(seq=device.seq, name="bench/e", data=data, ttl=60, private=True)))
    stats.sent += count
    return b"".join(out)
