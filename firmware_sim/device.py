"""SimDevice: simulated firmware on a protocol.Connection(CLIENT) over any Trio stream.

Over 400 lines, knowingly: one device's whole firmware (handshake, publish, subscribe, OTA, faults to inject).

    async with connect_device(stream, identity, server_key, DeviceSettings(product_id=42)) as dev:
        await dev.publish("temp", b"21.5")
        await dev.subscribe("temp")          # SubscribeResult.ACCEPTED
        event = await dev.receive_event()    # or: async for event in dev.events(): ...

One task reads (acks, pongs, status updates, events, goodbye); writes are serialised by a lock
that covers both encryption and the socket write, so frames leave in nonce order. Received
EVENTs wait in a bounded buffer (`DeviceSettings.event_buffer`) as in firmware: when the
application does not take them fast enough, the newest are dropped and counted, and the reader
never stops reading for them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import trio

from protocol import limits
from protocol.codes import AckResult, CloseReason, OtaRefusal, OtaResult, Privilege, Status, SubscribeResult
from protocol.connection import Connection, ConnectionClosed, Event, NeedData, Refused, Role
from protocol.errors import RemoteProtocolError
from protocol.messages import (
    EventMessage,
    Goodbye,
    Hello,
    Message,
    OtaAbort,
    OtaAccept,
    OtaChunk,
    OtaComplete,
    OtaOffer,
    OtaRefuse,
    Ping,
    Pong,
    Publish,
    PublishAck,
    Ready,
    StatusUpdate,
    Subscribe,
    SubscribeAck,
    Unsubscribe,
    Welcome,
)
from protocol.ota import ReceiverState

from .flash import Flash
from .identity import CounterSource, DeviceIdentity

_COUNTERS = CounterSource()


class DeviceRefused(Exception):
    """The server refused the handshake (it does not say why)."""


class DeviceClosed(Exception):
    """The link ended; `reason` is the server's GOODBYE reason or CONNECTION_LOST."""

    def __init__(self, reason: CloseReason, detail: str = "") -> None:
        super().__init__(f"{reason.name.lower()}: {detail}" if detail else reason.name.lower())
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """What the firmware reports and how it behaves."""

    product_id: int | None = None  # None: development firmware
    firmware_version: int = 1
    platform_id: int = 6  # Particle's Photon; any 16-bit value
    rx_max_frame: int = limits.NOISE_MAX_MESSAGE
    claim_code: str | None = None
    heartbeat: bool = True  # send PINGs at the interval the server asks for
    max_inflight: int = 64  # unacknowledged publishes in flight
    event_buffer: int = 256  # received EVENTs held for the application; more are dropped and counted
    ota: str = "accept"  # how the device answers OTA offers: accept | defer | refuse
    drop_after_bytes: int | None = None  # behaviour: drop the link once this much of an image is stored (once an image)
    stall_after_bytes: int | None = None  # behaviour: stop acknowledging chunks once this much is stored
    corrupt_chunk: bool = False  # behaviour: flip a byte of one stored chunk (first attempt of each image)
    corrupt_always: bool = False  # with corrupt_chunk: on every attempt, so retries fail too
    boot_fails: bool = False  # behaviour: a verified image does not take; the device keeps its old version
    reboot_delay: float = 0.0  # seconds between reporting a verified image and leaving to "reboot"


Observer = Callable[[str, dict[str, int | str]], None]
"""Told of each OTA step (offer, accept, drop, corrupt, complete, abort) with its figures."""


@dataclass(slots=True)
class DeviceState:
    status: Status | None = None
    privileges: Privilege = Privilege.NONE
    product_id: int | None = None
    updates: list[StatusUpdate] = field(default_factory=list)


class SimDevice:
    def __init__(
        self,
        identity: DeviceIdentity,
        server_public_key: bytes,
        settings: DeviceSettings = DeviceSettings(),
        counter: int | None = None,
        flash: Flash | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.identity = identity
        self.settings = settings
        self.flash = flash if flash is not None else Flash()
        self.observer = observer
        self.ota_results: list[OtaComplete] = []  # what this device reported for each transfer
        self.rebooting_into: int | None = None  # set once an image verified: the device restarts
        self.bytes_by_version: dict[int, int] = {}  # image bytes stored on this connection, per version
        self.conn = Connection(
            Role.CLIENT, identity.key, server_public_key=server_public_key, rx_max_frame=settings.rx_max_frame
        )
        self.counter = counter if counter is not None else _COUNTERS.next()
        self.state = DeviceState()
        self.welcome: Welcome | None = None
        self.closed: DeviceClosed | None = None
        self.closed_event = trio.Event()
        self.status_changed = trio.Event()
        self.events_acked = 0
        self.subscriptions: set[str] = set()  # prefixes the server accepted
        self.events_received = 0  # EVENTs read from the link
        self.events_dropped = 0  # ... of which the application's buffer had no room for
        self.events_skipped = 0  # events the server said it skipped for this connection (EVENT.skipped)
        self._events_send, self._events_recv = trio.open_memory_channel[EventMessage](settings.event_buffer)
        self._stream: trio.abc.Stream | None = None
        self._send_lock = trio.Lock()
        self._seq = 0
        self._pending: dict[int, tuple[trio.Event, list[Message]]] = {}
        self._window = trio.Semaphore(settings.max_inflight)

    @property
    def device_id(self) -> str:
        return self.identity.device_id_hex

    # ------------------------------------------------------------------ handshake

    async def handshake(self, stream: trio.abc.Stream) -> Welcome:
        """Hello -> Welcome -> Ready. Raises DeviceRefused, DeviceClosed or RemoteProtocolError."""
        self._stream = stream
        s = self.settings
        hello = Hello(
            device_id=self.identity.device_id,
            product_id=s.product_id,
            firmware_version=s.firmware_version,
            platform_id=s.platform_id,
            counter=self.counter,
            rx_max_frame=s.rx_max_frame,
            claim_code=s.claim_code,
        )
        await stream.send_all(self.conn.send(hello))
        event = await self._next_event()
        if isinstance(event, Refused):
            raise DeviceRefused("the server refused the handshake")
        if isinstance(event, ConnectionClosed):
            raise DeviceClosed(CloseReason.CONNECTION_LOST, "closed during the handshake")
        assert isinstance(event, Welcome)
        self.welcome = event
        self.state.status, self.state.privileges, self.state.product_id = (
            event.status,
            event.privileges,
            event.product_id,
        )
        await self.send(Ready())
        return event

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Read until the link ends; with heartbeats on, ping at the server's interval."""
        async with trio.open_nursery() as nursery:
            if self.settings.heartbeat and self.welcome is not None:
                nursery.start_soon(self._heartbeat, self.welcome.heartbeat_interval)
            await self._read_loop()
            nursery.cancel_scope.cancel()

    async def _read_loop(self) -> None:
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, PublishAck | Pong | SubscribeAck):
                    self._resolve(event.seq, event)
                elif isinstance(event, EventMessage):
                    self._on_event(event)
                elif isinstance(event, Ping):
                    await self.send(Pong(event.seq))
                elif isinstance(event, StatusUpdate):
                    self.state.status, self.state.privileges = event.status, event.privileges
                    self.state.product_id = event.product_id
                    self.state.updates.append(event)
                    self.status_changed.set()
                    self.status_changed = trio.Event()
                elif isinstance(event, OtaOffer | OtaChunk | OtaAbort):
                    if await self._on_ota(event):
                        return  # rebooting into the new image
                elif isinstance(event, Goodbye):
                    self._mark_closed(DeviceClosed(event.reason, event.detail))
                    return
                elif isinstance(event, ConnectionClosed):
                    self._mark_closed(DeviceClosed(CloseReason.CONNECTION_LOST, "the server closed the stream"))
                    return
        except RemoteProtocolError as exc:
            self.flash.receiver.connection_lost()
            self._mark_closed(DeviceClosed(exc.reason, f"server sent bad data: {exc}"))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.flash.receiver.connection_lost()
            if self._stream is not None:
                await trio.aclose_forcefully(self._stream)
            self._mark_closed(DeviceClosed(CloseReason.CONNECTION_LOST, str(exc)))

    async def _on_ota(self, message: OtaOffer | OtaChunk | OtaAbort) -> bool:
        """Drive the flash's receiver; True when a verified image means a reboot now."""
        receiver = self.flash.receiver
        if isinstance(message, OtaAbort):
            if receiver.abort(message):
                self._note("abort", reason=message.reason.name.lower())
            return False
        if isinstance(message, OtaOffer):
            self._note("offer", version=message.version, size=message.size)
            await self._answer_offer(message)
        else:
            await self._on_chunk(message)
        if receiver.state is ReceiverState.VERIFYING:
            return await self._verify()
        return False

    async def _answer_offer(self, offer: OtaOffer) -> None:
        receiver = self.flash.receiver
        s = self.settings
        refusal = receiver.offer(offer, platform_id=s.platform_id, product_id=s.product_id)
        if refusal is not None:
            reply: Message = refusal
        elif self.settings.ota == "defer":
            reply = receiver.defer(60)
        elif self.settings.ota == "refuse":
            reply = receiver.refuse(OtaRefusal.OTHER, "this simulated device refuses updates")
        else:
            reply = receiver.accept()
        if isinstance(reply, OtaAccept):
            self._note("accept", version=offer.version, offset=reply.offset)
        elif isinstance(reply, OtaRefuse):
            self._note("refuse", version=offer.version, reason=reply.reason.name.lower())
        else:
            self._note(type(reply).__name__.removeprefix("Ota").lower(), version=offer.version)
        await self.send(reply)

    async def _on_chunk(self, chunk: OtaChunk) -> None:
        receiver = self.flash.receiver
        offer = receiver.current_offer
        result = receiver.receive_chunk(chunk)
        if result.store:
            assert offer is not None
            self.flash.write(chunk.offset, self._maybe_corrupt(offer, chunk))
            self.bytes_by_version[offer.version] = self.bytes_by_version.get(offer.version, 0) + len(chunk.data)
            drop = self.settings.drop_after_bytes
            if drop is not None and receiver.received_until >= drop and self._inject("drop", offer):
                self._note("drop", version=offer.version, offset=receiver.received_until)
                raise trio.BrokenResourceError(f"behaviour: link dropped after {receiver.received_until} bytes")
        stall = self.settings.stall_after_bytes
        ack = None if stall is not None and receiver.received_until >= stall else result.ack
        for reply in (ack, result.complete):
            if reply is not None:
                await self.send(reply)
        if result.complete is not None:
            self.ota_results.append(result.complete)
            self._note("complete", status=result.complete.status.name.lower())

    def _maybe_corrupt(self, offer: OtaOffer, chunk: OtaChunk) -> bytes | memoryview:
        """With corrupt_chunk: the chunk holding the image's middle byte is stored with that byte
        flipped, as a bad flash write would. The running hash saw the true bytes, so only the
        check of the stored copy catches it (HASH_MISMATCH)."""
        data = chunk.data
        middle = offer.size // 2
        if not self.settings.corrupt_chunk or not chunk.offset <= middle < chunk.offset + len(data):
            return data
        if not self._inject("corrupt", offer) and not self.settings.corrupt_always:
            return data
        self._note("corrupt", version=offer.version, offset=middle)
        flipped = bytearray(data)
        flipped[middle - chunk.offset] ^= 0xFF
        return bytes(flipped)

    def _inject(self, behaviour: str, offer: OtaOffer) -> bool:
        """True the first time `behaviour` fires for this image on this flash."""
        key = (behaviour, offer.sha256)
        if key in self.flash.injected:
            return False
        self.flash.injected.add(key)
        return True

    async def _verify(self) -> bool:
        receiver = self.flash.receiver
        complete = receiver.verify(read=self.flash.read)
        self.ota_results.append(complete)
        offer = receiver.current_offer
        assert offer is not None
        self._note("complete", version=offer.version, status=complete.status.name.lower())
        await self.send(complete)
        if complete.status is not OtaResult.VERIFIED:
            return False
        self.rebooting_into = offer.version
        if not self.settings.boot_fails:  # a failed boot falls back to the image it had
            self.flash.installed_version = offer.version
        if self.settings.reboot_delay > 0:
            await trio.sleep(self.settings.reboot_delay)
        await self.goodbye()  # "reboot": the next connection reports the version that booted
        return True

    def _note(self, event: str, **detail: int | str) -> None:
        if self.observer is not None:
            self.observer(event, detail)

    async def _heartbeat(self, interval: int) -> None:
        while True:
            await trio.sleep(interval)
            await self.ping()

    async def _next_event(self) -> Event:
        assert self._stream is not None
        while True:
            event = self.conn.next_event()
            if not isinstance(event, NeedData):
                return event
            self.conn.receive_data(await self._stream.receive_some(65536))

    def _on_event(self, event: EventMessage) -> None:
        self.events_received += 1
        self.events_skipped += event.skipped
        try:
            self._events_send.send_nowait(event)
        except trio.WouldBlock:
            self.events_dropped += 1
        except trio.ClosedResourceError:
            pass

    def _mark_closed(self, closed: DeviceClosed) -> None:
        if self.closed is None:
            self.closed = closed
        for done, _ in self._pending.values():
            done.set()
        self._events_send.close()  # what was received stays readable, then receive_event raises
        self.closed_event.set()

    def _resolve(self, seq: int, message: Message) -> None:
        pending = self._pending.pop(seq, None)
        if pending is not None:
            pending[1].append(message)
            pending[0].set()

    # ------------------------------------------------------------------ actions

    async def send(self, message: Message) -> None:
        if self.closed is not None:
            raise self.closed
        assert self._stream is not None
        async with self._send_lock:
            await self._stream.send_all(self.conn.send(message))

    async def _request(
        self, make: type[Publish] | type[Ping] | type[Subscribe] | type[Unsubscribe], **fields: object
    ) -> Message:
        self._seq = (self._seq + 1) % (limits.MAX_SEQ + 1)
        seq = self._seq
        done: trio.Event = trio.Event()
        box: list[Message] = []
        self._pending[seq] = (done, box)
        try:
            await self.send(make(seq=seq, **fields))  # type: ignore[arg-type]
            await done.wait()
        finally:
            self._pending.pop(seq, None)
        if not box:
            assert self.closed is not None
            raise self.closed
        return box[0]

    async def publish(self, name: str, data: bytes = b"", ttl: int = 60, private: bool = True) -> AckResult:
        """Publish and wait for the server's acknowledgement."""
        async with self._window:
            ack = await self._request(Publish, name=name, data=data, ttl=ttl, private=private)
        assert isinstance(ack, PublishAck)
        if ack.result is AckResult.ACCEPTED:
            self.events_acked += 1
        return ack.result

    async def ping(self) -> float:
        """Round-trip time of one PING, in seconds."""
        start = trio.current_time()
        await self._request(Ping)
        return trio.current_time() - start

    async def subscribe(self, prefix: str) -> SubscribeResult:
        """Ask for events whose name starts with `prefix` and wait for the server's answer."""
        ack = await self._request(Subscribe, prefix=prefix)
        assert isinstance(ack, SubscribeAck)
        if ack.result is SubscribeResult.ACCEPTED:
            self.subscriptions.add(prefix)
        return ack.result

    async def unsubscribe(self, prefix: str | None = None) -> SubscribeResult:
        """Drop one prefix (as subscribed), or every prefix with None; EVENTs of it read before the
        answer may still be in the buffer."""
        ack = await self._request(Unsubscribe, prefix=prefix)
        assert isinstance(ack, SubscribeAck)
        if prefix is None:
            self.subscriptions.clear()
        else:
            self.subscriptions.discard(prefix)
        return ack.result

    async def receive_event(self) -> EventMessage:
        """The next received EVENT, waiting for one; DeviceClosed once the link has ended and the
        buffer is empty (callers set the deadline)."""
        try:
            return await self._events_recv.receive()
        except trio.EndOfChannel:
            assert self.closed is not None
            raise self.closed from None

    async def events(self) -> AsyncGenerator[EventMessage, None]:
        """Received EVENTs as they arrive, until the link ends."""
        while True:
            try:
                yield await self.receive_event()
            except DeviceClosed:
                return

    async def goodbye(self, reason: CloseReason = CloseReason.NORMAL) -> None:
        if self.closed is None:
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.send(Goodbye(reason))
            self._mark_closed(DeviceClosed(CloseReason.NORMAL, "device said goodbye"))

    async def wait_status(self, status: Status) -> None:
        """Wait until the server has put this connection in `status` (callers set the deadline)."""
        while self.state.status is not status:
            if self.closed is not None:
                raise self.closed
            await self.status_changed.wait()


@asynccontextmanager
async def connect_device(
    stream: trio.abc.Stream,
    identity: DeviceIdentity,
    server_public_key: bytes,
    settings: DeviceSettings = DeviceSettings(),
    counter: int | None = None,
) -> AsyncIterator[SimDevice]:
    """Handshake, run the device in the background, and say goodbye and close on exit."""
    device = SimDevice(identity, server_public_key, settings, counter)
    try:
        await device.handshake(stream)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(device.run)
            try:
                yield device
            finally:
                with trio.move_on_after(2) as scope:
                    scope.shield = True
                    await device.goodbye()
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)
