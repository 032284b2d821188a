"""SimDevice's side of OTA against a scripted server peer (the real server Connection and
ImageSender over memory streams): a full transfer, a resume after a dropped link, signatures."""

from __future__ import annotations

import hashlib
import secrets

import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_sim.device import DeviceClosed, DeviceSettings, SimDevice
from firmware_sim.flash import Flash
from firmware_sim.identity import DeviceIdentity
from protocol.codes import OtaRefusal, OtaResult, Privilege, Status
from protocol.connection import Connection, NeedData, Role
from protocol.messages import (
    Goodbye,
    Hello,
    Message,
    OtaAccept,
    OtaComplete,
    OtaRefuse,
    OtaWindowAck,
    Ready,
    Welcome,
)
from protocol.noise import KeyPair
from protocol.ota import ImageSender, build_offer

IMAGE = secrets.token_bytes(50_000)


class ScriptedServer:
    """Just enough of a server to offer one image; every byte goes through the real protocol."""

    def __init__(self, stream: trio.abc.Stream, key: KeyPair) -> None:
        self.stream, self.conn = stream, Connection(Role.SERVER, key)
        self.received: list[Message] = []

    async def next(self) -> Message | None:
        while True:
            event = self.conn.next_event()
            if isinstance(event, Message):
                self.received.append(event)
                return event
            if not isinstance(event, NeedData):
                return None
            data = await self.stream.receive_some(65536)
            self.conn.receive_data(data)

    async def handshake(self) -> Hello:
        hello = await self.next()
        assert isinstance(hello, Hello)
        welcome = Welcome(Status.OK, Privilege.all(), hello.product_id, 30, 75, 4096, 0)
        await self.stream.send_all(self.conn.send(welcome))
        assert isinstance(await self.next(), Ready)
        return hello

    async def offer(
        self, image: bytes, transfer_id: int, signature: bytes | None = None, target: tuple[int, int] | None = None
    ) -> Message | None:
        """Offer the image (saying it is for `target`: platform, product) and send it; returns the
        device's last OTA answer (or None if it left)."""
        hello = self.conn.hello
        assert hello is not None
        offer = build_offer(
            transfer_id=transfer_id, version=7, image=image, rx_max_frame=hello.rx_max_frame, window=8,
            signature=signature, platform_id=target[0] if target else None, product_id=target[1] if target else None,
        )  # fmt: skip
        await self.stream.send_all(self.conn.send(offer))
        answer = await self.next()
        if not isinstance(answer, OtaAccept):
            return answer
        sender = ImageSender(offer, image)
        sender.start(answer)
        while True:
            chunks = sender.chunks_to_send()
            if chunks:
                try:
                    await self.stream.send_all(b"".join(self.conn.send(c) for c in chunks))
                except trio.BrokenResourceError:
                    return None  # the device dropped the link
            reply = await self.next()
            if isinstance(reply, OtaWindowAck):
                sender.on_ack(reply)
            elif reply is None or isinstance(reply, OtaComplete | OtaRefuse | Goodbye):
                return reply


async def run_pair(
    device: SimDevice,
    key: KeyPair,
    image: bytes,
    transfer_id: int,
    signature: bytes | None = None,
    target: tuple[int, int] | None = None,
) -> tuple[Message | None, ScriptedServer]:
    client, server_end = trio.testing.memory_stream_pair()
    server = ScriptedServer(server_end, key)
    result: list[Message | None] = []
    async with trio.open_nursery() as nursery:

        async def serve() -> None:
            await server.handshake()
            last = await server.offer(image, transfer_id, signature, target)
            result.append(last)
            if isinstance(last, OtaComplete) and last.status is OtaResult.VERIFIED:
                while await server.next() is not None:  # the device says goodbye and "reboots"
                    pass
            await server.stream.aclose()

        nursery.start_soon(serve)
        await device.handshake(client)
        await device.run()
    return result[0], server


def new_device(key: KeyPair, flash: Flash, **settings: object) -> SimDevice:
    return SimDevice(DeviceIdentity.generate(), key.public, DeviceSettings(heartbeat=False, **settings), flash=flash)  # type: ignore[arg-type]


async def test_a_full_transfer_ends_verified_and_the_device_reboots() -> None:
    key, flash = KeyPair.generate(), Flash()
    device = new_device(key, flash, rx_max_frame=1024)  # small frames: many chunks
    last, server = await run_pair(device, key, IMAGE, transfer_id=1)
    assert isinstance(last, OtaComplete) and last.status is OtaResult.VERIFIED
    assert flash.installed_version == device.rebooting_into == 7
    assert flash.read(0, len(IMAGE)) == IMAGE
    assert isinstance(server.received[-1], Goodbye)  # the "reboot"


async def test_a_dropped_link_resumes_from_the_stored_bytes() -> None:
    key, flash = KeyPair.generate(), Flash()
    first = new_device(key, flash, rx_max_frame=2048, drop_after_bytes=20_000)
    last, _ = await run_pair(first, key, IMAGE, transfer_id=1)
    assert last is None and isinstance(first.closed, DeviceClosed)
    stored = flash.receiver.received_until
    assert 20_000 <= stored < len(IMAGE)
    written_before = flash.bytes_written

    second = new_device(key, flash, rx_max_frame=2048)
    last, server = await run_pair(second, key, IMAGE, transfer_id=2)
    accept = next(m for m in server.received if isinstance(m, OtaAccept))
    assert accept.offset == stored  # resumed, not restarted
    assert isinstance(last, OtaComplete) and last.status is OtaResult.VERIFIED
    assert flash.bytes_written - written_before == len(IMAGE) - stored
    assert hashlib.sha256(flash.read(0, len(IMAGE))).digest() == hashlib.sha256(IMAGE).digest()


@pytest.mark.parametrize("signed_by", ["product-key", "other-key", "unsigned"])
async def test_a_device_that_requires_signatures(signed_by: str) -> None:
    product_key = Ed25519PrivateKey.generate()
    key, flash = KeyPair.generate(), Flash(public_key=product_key.public_key(), require_signature=True)
    signer = {"product-key": product_key, "other-key": Ed25519PrivateKey.generate(), "unsigned": None}[signed_by]
    signature = signer.sign(IMAGE) if signer is not None else None
    last, _ = await run_pair(new_device(key, flash), key, IMAGE, transfer_id=1, signature=signature)
    if signed_by == "product-key":
        assert isinstance(last, OtaComplete) and last.status is OtaResult.VERIFIED
    elif signed_by == "other-key":
        assert isinstance(last, OtaComplete) and last.status is OtaResult.SIGNATURE_INVALID
        assert flash.installed_version is None
    else:
        assert isinstance(last, OtaRefuse) and last.reason is OtaRefusal.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("target", "reason"),
    [((12, 42), OtaRefusal.WRONG_PLATFORM), ((6, 43), OtaRefusal.WRONG_PRODUCT), ((6, 42), None)],
    ids=["other-platform", "other-product", "its-own"],
)
async def test_a_device_refuses_an_offer_forged_for_other_hardware(
    target: tuple[int, int], reason: OtaRefusal | None
) -> None:
    """A server that offers what the HELLO rules out gets a typed refusal, before a single chunk."""
    key, flash = KeyPair.generate(), Flash()
    device = new_device(key, flash, product_id=42, platform_id=6)
    last, server = await run_pair(device, key, IMAGE, transfer_id=1, target=target)
    if reason is None:
        assert isinstance(last, OtaComplete) and last.status is OtaResult.VERIFIED
        return
    assert isinstance(last, OtaRefuse) and last.reason is reason
    assert flash.bytes_written == 0 and flash.installed_version is None and device.rebooting_into is None
    assert not any(isinstance(m, OtaAccept) for m in server.received)
