"""Seed inputs for the protocol fuzzer: a valid input for each target (fuzz_targets.py), so the
fuzzer starts from inputs that reach deep into each parser instead of from nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from protocol import limits
from protocol.codes import CloseReason, OtaAbortReason, Privilege, Status
from protocol.connection import FROM_DEVICE, PREAMBLE, Connection, Role, prologue_for
from protocol.framing import encode_frame
from protocol.messages import (
    EventMessage,
    Goodbye,
    Message,
    OtaAbort,
    OtaAccept,
    OtaChunk,
    OtaOffer,
    OtaWindowAck,
    PublishAck,
    Ready,
    StatusUpdate,
    SubscribeAck,
    encode_message,
)
from protocol.noise import HandshakeIK

from . import fuzz_targets as t
from .mutate import SEEDS

FROM_SERVER: tuple[Message, ...] = (
    PublishAck(seq=1),
    SubscribeAck(seq=2),
    StatusUpdate(Status.LIMITED, Privilege.NONE, None),
    EventMessage(5, "chaos/e", b"data", 1_700_000_000_000, 60, bytes(12), True, 3),
    OtaOffer(1, 2, 1024, bytes(32), 256, 4, None, 6, 7),
    OtaChunk(1, 0, b"\x00" * 256),
    OtaAbort(1, OtaAbortReason.TIMEOUT, "slow"),
    Goodbye(CloseReason.IDLE_TIMEOUT, "quiet"),
)


def _prefixed(messages: tuple[Message, ...]) -> bytes:
    out = bytearray()
    for m in messages:
        plaintext = encode_message(m)
        if len(plaintext) <= 255:
            out += bytes([len(plaintext)]) + plaintext
    return bytes(out)


def seed_inputs() -> Iterator[bytes]:
    device_messages = tuple(m for m in SEEDS if type(m) in FROM_DEVICE)
    # framing: frames, then a partial one
    yield bytes([0, 0]) + encode_frame(b"abc") + encode_frame(b"\x00" * 300) + b"\x01"
    yield bytes([0, 3]) + b"\x00\x00" + encode_frame(b"x")
    for m in (*SEEDS, *FROM_SERVER):
        yield bytes([1, 0]) + encode_message(m)
    # the server's handshake: a whole first flight, READY and a PUBLISH sealed with the real cipher
    _, device_send = t.open_server()
    hs = HandshakeIK(
        initiator=True, static=t.DEVICE_KEY, remote_static=t.SERVER_KEY.public, prologue=prologue_for(PREAMBLE),
        ephemeral=t.DEVICE_EPHEMERAL,
    )  # fmt: skip
    flight = PREAMBLE + encode_frame(hs.write_message_1(encode_message(t.hello())))
    after = b"".join(encode_frame(device_send.encrypt_with_ad(b"", encode_message(m))) for m in (Ready(), SEEDS[0]))
    for cut in (0, 1, 7):
        yield bytes([2, cut]) + flight + after
    # the device's handshake: the server's WELCOME flight, then an event sealed with the real cipher
    device = Connection(Role.CLIENT, t.DEVICE_KEY, server_public_key=t.SERVER_KEY.public,
                          ephemeral=t.DEVICE_EPHEMERAL)  # fmt: skip
    first = device.send(t.hello())
    server_hs = HandshakeIK(
        initiator=False, static=t.SERVER_KEY, prologue=prologue_for(PREAMBLE), ephemeral=t.SERVER_EPHEMERAL
    )
    server_hs.read_message_1(first[len(PREAMBLE) + 2 :])
    welcome_frame = encode_frame(server_hs.write_message_2(encode_message(t.welcome(limits.SERVER_RX_MAX_FRAME))))
    _, server_send = server_hs.split()
    event = encode_frame(server_send.encrypt_with_ad(b"", encode_message(FROM_SERVER[3])))
    yield bytes([3, 0]) + welcome_frame + event
    yield bytes([3, 0]) + b"\x00\x00"  # the refusal frame
    yield bytes([4, 1]) + _prefixed(device_messages)
    yield bytes([4, 0]) + _prefixed((Ready(), *device_messages))
    yield bytes([5, 0]) + _prefixed(FROM_SERVER)
    yield bytes([6, 0]) + encode_frame(b"\x00" * 40)
    # OTA: a whole transfer of a 1 KiB image at each side
    image = t.OTA_IMAGE
    offer = OtaOffer(3, 2, len(image), hashlib.sha256(image).digest(), 256, 4, None, 6, 7)
    chunks = tuple(OtaChunk(3, at, image[at : at + 256]) for at in range(0, len(image), 256))
    yield bytes([7, 0]) + _prefixed((offer, *chunks[:2], OtaAbort(3, OtaAbortReason.TIMEOUT), offer, *chunks[2:]))
    yield bytes([8, 127]) + _prefixed((OtaAccept(9, 0), OtaWindowAck(9, 254), OtaWindowAck(9, 1024)))


def write_seeds(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for data in seed_inputs():
        (directory / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
        n += 1
    return n
