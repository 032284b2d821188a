"""A lean MQTT 3.1.1 client: CONNECT/CONNACK, PUBLISH QoS 0/1, PUBACK, SUBSCRIBE/SUBACK, and
DISCONNECT, over any Trio stream (TCP or TLS). Only what the peers benchmark needs."""

from __future__ import annotations

import struct
from collections.abc import Iterator

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, DISCONNECT = 1, 2, 3, 4, 8, 9, 14


class MqttError(Exception):
    pass


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


def connect(client_id: str, keepalive: int = 60, username: str | None = None) -> bytes:
    flags = 0x02 | (0x80 if username else 0)  # clean session
    body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _str(client_id)
    if username:
        body += _str(username)
    return packet(CONNECT, 0, body)


def publish(topic: str, payload: bytes, qos: int, packet_id: int = 0, retain: bool = False) -> bytes:
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(PUBLISH, qos << 1 | int(retain), body)


def subscribe(packet_id: int, topic: str, qos: int) -> bytes:
    return packet(SUBSCRIBE, 0x02, struct.pack("!H", packet_id) + _str(topic) + bytes([qos]))


def disconnect() -> bytes:
    return packet(DISCONNECT, 0, b"")


class Decoder:
    """Bytes in, (type, flags, body) packets out."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray) -> Iterator[tuple[int, int, bytes]]:
        buf = self._buf
        buf += data
        while len(buf) >= 2:
            length, shift, i = 0, 0, 1
            while True:
                if i >= len(buf):
                    return
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise MqttError("malformed remaining length")
            if len(buf) < i + length:
                return
            head = buf[0]
            body = bytes(buf[i : i + length])
            del buf[: i + length]
            yield head >> 4, head & 0x0F, body


def publish_payload(body: bytes, flags: int) -> tuple[int, bytes]:
    """(packet id or 0, payload) of a PUBLISH body."""
    (tlen,) = struct.unpack_from("!H", body)
    pos = 2 + tlen
    pid = 0
    if (flags >> 1) & 3:
        (pid,) = struct.unpack_from("!H", body, pos)
        pos += 2
    return pid, body[pos:]
