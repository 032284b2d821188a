"""Hostile bytes from valid ones: byte-level mutations of frames and structured mutations of
msgpack message payloads. Pure and seeded: the same Random gives the same mutations."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgpack

from protocol.codes import CloseReason, OtaRefusal, OtaResult, Privilege, Status
from protocol.messages import (
    EventMessage,
    Goodbye,
    Message,
    OtaAccept,
    OtaComplete,
    OtaDefer,
    OtaRefuse,
    OtaWindowAck,
    Ping,
    Pong,
    Publish,
    PublishAck,
    Ready,
    StatusUpdate,
    Subscribe,
    Unsubscribe,
    encode_message,
)


def flip_bit(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    i = rng.randrange(len(out))
    out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def set_byte(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    out[rng.randrange(len(out))] = rng.choice((0x00, 0xFF, 0x7F, 0x80, 0xC1, 0xDC, 0xDD, rng.randrange(256)))
    return bytes(out)


def insert_bytes(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.randbytes(rng.randint(1, 8)) + data[at:]


def delete_bytes(rng: random.Random, data: bytes) -> bytes:
    if len(data) < 2:
        return b""
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, min(8, len(data) - at)) :]


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))] if data else b""


def duplicate(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    end = rng.randint(at + 1, len(data))
    return data[:end] + data[at:end] + data[end:]


BYTE_MUTATIONS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    flip_bit, set_byte, insert_bytes, delete_bytes, truncate, duplicate,
)  # fmt: skip


def mutate_bytes(rng: random.Random, data: bytes, rounds: int = 0) -> bytes:
    """One to three byte-level mutations (or `rounds`) of `data`."""
    for _ in range(rounds or rng.randint(1, 3)):
        data = rng.choice(BYTE_MUTATIONS)(rng, data)
    return data


# ---------------------------------------------------------------------- message payloads

SEEDS: tuple[Message, ...] = (
    Publish(seq=7, name="chaos/temp", data=b"21.5", ttl=60, private=True),
    Ping(seq=8),
    Pong(seq=9),
    Subscribe(seq=10, prefix="chaos/"),
    Unsubscribe(seq=11, prefix=None),
    Goodbye(CloseReason.CLIENT_ERROR, "chaos"),
    OtaAccept(transfer_id=1, offset=0),
    OtaDefer(transfer_id=1, retry_after=60),
    OtaRefuse(transfer_id=1, reason=OtaRefusal.BUSY, detail="busy"),
    OtaWindowAck(transfer_id=1, received_until=512),
    OtaComplete(transfer_id=1, status=OtaResult.VERIFIED),
    # Valid messages the device may never send (direction) or only once (Ready).
    Ready(),
    PublishAck(seq=1),
    StatusUpdate(Status.OK, Privilege.all(), 7),
    EventMessage(1, "chaos/e", b"x", 1_700_000_000_000, 60, b"\x01" * 12),
)


def _odd_value(rng: random.Random) -> Any:
    """A msgpack value of a type or size no field expects."""
    choices: list[Callable[[], Any]] = [
        lambda: -rng.randint(1, 2**63),
        lambda: rng.choice((2**32, 2**63, 2**64 - 1)),
        lambda: rng.random() * 1e9,
        lambda: None,
        lambda: rng.choice((True, False)),
        lambda: "x" * rng.choice((0, 65, 129, 300)),
        lambda: "\udc80".encode("utf-8", "surrogatepass").decode("utf-8", "replace") * 3,
        lambda: rng.randbytes(rng.choice((0, 11, 13, 2000))),
        lambda: [1, [2, [3, [4, [5]]]]],
        lambda: [],
        lambda: {"k": 1},
    ]
    return rng.choice(choices)()


def _pack(items: Any) -> bytes:
    try:
        out: bytes = msgpack.packb(items, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        out = msgpack.packb([items[0] if isinstance(items, list) and items else 0], use_bin_type=True)
    return out


def mutate_payload(rng: random.Random, payload: bytes) -> bytes:
    """A mutation of one message's msgpack plaintext: structural (a field's type or size, the
    message type, missing or extra items, nesting) or byte-level."""
    items = msgpack.unpackb(payload, raw=False)
    assert isinstance(items, list)
    kind = rng.randrange(7)
    if kind == 0 and len(items) > 1:  # one field of the wrong type or out of range
        items[rng.randrange(1, len(items))] = _odd_value(rng)
    elif kind == 1:  # another or an unknown message type
        items[0] = rng.choice((0, 0x08, 0x16, 0x28, 0x30, 0xFF, 2**31, -1, rng.randrange(0x01, 0x28)))
    elif kind == 2:  # required fields missing
        items = items[: rng.randrange(1, max(2, len(items)))]
    elif kind == 3:  # extra trailing items, possibly nested too deep
        items.extend(_odd_value(rng) for _ in range(rng.randint(1, 20)))
    elif kind == 4:  # not an array at all
        return _pack(rng.choice((items[0], {"type": items[0]}, "hello", None, b"\x00")))
    elif kind == 5:
        return mutate_bytes(rng, payload)
    else:  # a valid message as it is (the server must take it or answer it with a typed close)
        return payload
    return _pack(items)


def malformed_payload(rng: random.Random) -> bytes:
    """A mutated payload of one of the seed messages."""
    return mutate_payload(rng, encode_message(rng.choice(SEEDS)))
