"""Write tests/vectors/golden_session.json: one complete device session, byte for byte.

    python scripts/make_golden.py           # (re)write the file
    python scripts/make_golden.py --check   # exit 1 if the file is not what this script makes

A client and a server `protocol.connection.Connection` with fixed static and ephemeral keys
talk through a whole session (HELLO, WELCOME, READY, PUBLISH, PUBLISH_ACK, PING, PONG, STATUS,
GOODBYE). Every step records the message as JSON fields, its msgpack plaintext and the exact
bytes on the wire. A refusal example and an independent step-by-step trace of the Noise
handshake (every h, ck, DH output and key) are included so that a firmware engineer writing a
device in C can check each intermediate value. Everything is deterministic: X25519,
ChaCha20-Poly1305 and msgpack have no randomness once the ephemeral keys are fixed.

tests/protocol/test_golden.py replays the file and regenerates it with `build()`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
from enum import IntEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from protocol import limits
from protocol.codes import AckResult, CloseReason, Privilege, Status
from protocol.connection import (
    PREAMBLE,
    Connection,
    ConnectionClosed,
    Event,
    NeedData,
    Refused,
    Role,
    prologue_for,
)
from protocol.messages import (
    Goodbye,
    Hello,
    Message,
    Ping,
    Pong,
    Publish,
    PublishAck,
    Ready,
    StatusUpdate,
    Welcome,
    encode_message,
)
from protocol.noise import PROTOCOL_NAME, KeyPair

OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "golden_session.json"

CLIENT_RX_MAX_FRAME = 1024
SERVER_RX_MAX_FRAME = limits.SERVER_RX_MAX_FRAME

C2S = "client->server"
S2C = "server->client"


def _key(label: str) -> KeyPair:
    """A fixed X25519 key: SHA-256 of a label (any 32 bytes are a valid private key)."""
    return KeyPair(hashlib.sha256(f"fleetgate golden session: {label}".encode()).digest())


CLIENT_STATIC = _key("client static")
CLIENT_EPHEMERAL = _key("client ephemeral")
SERVER_STATIC = _key("server static")
SERVER_EPHEMERAL = _key("server ephemeral")

# The session, in order. Each entry: (sender, message).
HELLO = Hello(
    device_id=bytes.fromhex("e00fce681f2d3c4b5a697887"),
    product_id=4242,
    firmware_version=7,
    platform_id=12,
    counter=1_700_000_000_000_000,  # a microsecond Unix timestamp
    rx_max_frame=CLIENT_RX_MAX_FRAME,
)
WELCOME = Welcome(
    status=Status.QUARANTINED,
    privileges=Privilege.NONE,
    product_id=4242,
    heartbeat_interval=30,
    idle_timeout=90,
    rx_max_frame=SERVER_RX_MAX_FRAME,
    server_time_ms=1_700_000_000_123,
)
SESSION: tuple[tuple[str, Message], ...] = (
    (C2S, HELLO),
    (S2C, WELCOME),
    (C2S, Ready()),
    (C2S, Publish(seq=1, name="temperature", data=b'{"c":21.5}', ttl=60, private=True)),
    (S2C, PublishAck(seq=1, result=AckResult.ACCEPTED)),
    (C2S, Ping(seq=1)),
    (S2C, Pong(seq=1)),
    (S2C, StatusUpdate(status=Status.OK, privileges=Privilege.all(), product_id=4242)),
    (C2S, Goodbye(reason=CloseReason.NORMAL)),
)


def message_to_json(message: Message) -> dict[str, Any]:
    """A message as {"type", "type_code", "fields"}: bytes as hex, codes as integers."""
    fields: dict[str, Any] = {}
    for name in message._NAMES:
        value = getattr(message, name)
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, IntEnum | Privilege):
            value = int(value)
        fields[name] = value
    return {"type": message.TYPE.name, "type_code": int(message.TYPE), "fields": fields}


# ---------------------------------------------------------------- independent handshake trace


def _hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    temp_key = hmac.digest(chaining_key, ikm, "sha256")
    out1 = hmac.digest(temp_key, b"\x01", "sha256")
    return out1, hmac.digest(temp_key, out1 + b"\x02", "sha256")


def _dh(private: bytes, public: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(public))


def _seal(key: bytes, nonce: int, ad: bytes, plaintext: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(b"\x00\x00\x00\x00" + nonce.to_bytes(8, "little"), plaintext, ad)


def handshake_trace(hello_plain: bytes, welcome_plain: bytes) -> dict[str, Any]:
    """Noise IK written out token by token with no help from protocol.noise.

    Returns every intermediate value a C implementation can compare against, plus the two
    handshake messages and the transport keys; build() checks they match the Connection's bytes.
    """
    steps: list[dict[str, str]] = []
    h = PROTOCOL_NAME  # exactly 32 bytes, so h = the name itself (no hashing, no padding)
    ck = h
    steps.append({"op": "InitializeSymmetric(protocol_name)", "h": h.hex(), "ck": ck.hex()})

    def mix_hash(label: str, data: bytes) -> None:
        nonlocal h
        h = hashlib.sha256(h + data).digest()
        steps.append({"op": f"MixHash({label})", "h": h.hex()})

    def mix_key(label: str, dh_out: bytes) -> bytes:
        nonlocal ck
        ck, k = _hkdf2(ck, dh_out)
        steps.append({"op": f"MixKey({label})", "dh": dh_out.hex(), "ck": ck.hex(), "k": k.hex()})
        return k

    def encrypt_and_hash(label: str, k: bytes, plaintext: bytes) -> bytes:
        ad = h
        ciphertext = _seal(k, 0, ad, plaintext)
        steps.append({"op": f"EncryptAndHash({label})", "ad": ad.hex(), "ciphertext": ciphertext.hex()})
        mix_hash(f"ciphertext of {label}", ciphertext)
        return ciphertext

    prologue = prologue_for(PREAMBLE)
    mix_hash("prologue", prologue)
    mix_hash("server static public key (pre-message <- s)", SERVER_STATIC.public)

    # Message 1, written by the device: -> e, es, s, ss
    e, s, rs = CLIENT_EPHEMERAL, CLIENT_STATIC, SERVER_STATIC.public
    mix_hash("e: client ephemeral public key", e.public)
    k = mix_key("es = DH(client ephemeral, server static)", _dh(e.private, rs))
    enc_s = encrypt_and_hash("s: client static public key", k, s.public)
    k = mix_key("ss = DH(client static, server static)", _dh(s.private, rs))
    enc_hello = encrypt_and_hash("HELLO payload", k, hello_plain)
    message_1 = e.public + enc_s + enc_hello

    # Message 2, written by the server: <- e, ee, se
    re = SERVER_EPHEMERAL
    mix_hash("e: server ephemeral public key", re.public)
    k = mix_key("ee = DH(server ephemeral, client ephemeral)", _dh(re.private, e.public))
    k = mix_key("se = DH(server ephemeral, client static)", _dh(re.private, s.public))
    enc_welcome = encrypt_and_hash("WELCOME payload", k, welcome_plain)
    message_2 = re.public + enc_welcome

    k1, k2 = _hkdf2(ck, b"")
    return {
        "steps": steps,
        "message_1": message_1.hex(),
        "message_2": message_2.hex(),
        "handshake_hash": h.hex(),
        "split": {
            "k1_client_to_server": k1.hex(),
            "k2_server_to_client": k2.hex(),
        },
    }


# ---------------------------------------------------------------- the session


def _drain(conn: Connection) -> list[Event]:
    """Every event the connection has ready, up to NEED_DATA or the end of the link."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if isinstance(event, NeedData):
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed | Refused) or conn.state.value == "closed":
            return events


def build() -> dict[str, Any]:
    client = Connection(
        Role.CLIENT,
        CLIENT_STATIC,
        server_public_key=SERVER_STATIC.public,
        rx_max_frame=CLIENT_RX_MAX_FRAME,
        ephemeral=CLIENT_EPHEMERAL,
    )
    server = Connection(Role.SERVER, SERVER_STATIC, rx_max_frame=SERVER_RX_MAX_FRAME, ephemeral=SERVER_EPHEMERAL)
    trace = handshake_trace(encode_message(HELLO), encode_message(WELCOME))
    nonces = {C2S: 0, S2C: 0}
    steps: list[dict[str, Any]] = []
    for index, (direction, message) in enumerate(SESSION):
        sender, receiver = (client, server) if direction == C2S else (server, client)
        wire = sender.send(message)
        receiver.receive_data(wire)
        events = _drain(receiver)
        if events != [message]:
            raise AssertionError(f"step {index}: receiver saw {events!r}, expected {message!r}")
        plaintext = encode_message(message)
        step: dict[str, Any] = {
            "index": index,
            "direction": direction,
            "message": message_to_json(message),
            "plaintext": plaintext.hex(),
            "wire": wire.hex(),
        }
        body = wire[len(PREAMBLE) :] if index == 0 else wire
        step["frame_length"] = int.from_bytes(body[:2], "big")
        if isinstance(message, Hello):
            step["kind"] = "noise handshake message 1 (preamble + frame)"
            noise = body[2:]
            if noise.hex() != trace["message_1"]:
                raise AssertionError("message 1 differs from the independent trace")
            step["noise"] = {
                "e": noise[:32].hex(),
                "encrypted_s": noise[32:80].hex(),
                "encrypted_payload": noise[80:].hex(),
            }
        elif isinstance(message, Welcome):
            step["kind"] = "noise handshake message 2"
            noise = body[2:]
            if noise.hex() != trace["message_2"]:
                raise AssertionError("message 2 differs from the independent trace")
            step["noise"] = {"e": noise[:32].hex(), "encrypted_payload": noise[32:].hex()}
        else:
            step["kind"] = "transport"
            step["nonce"] = nonces[direction]
            key_name = "k1_client_to_server" if direction == C2S else "k2_server_to_client"
            key = bytes.fromhex(trace["split"][key_name])
            if _seal(key, nonces[direction], b"", plaintext) != body[2:]:
                raise AssertionError(f"step {index}: transport frame differs from the trace keys")
            nonces[direction] += 1
        steps.append(step)
    for name, conn in (("client", client), ("server", server)):
        if conn.state.value != "closed":
            raise AssertionError(f"{name} ended in state {conn.state.value}, not closed")

    # A refusal: a fresh server reads the same HELLO and refuses it.
    refusing = Connection(Role.SERVER, SERVER_STATIC, ephemeral=SERVER_EPHEMERAL)
    refusing.receive_data(bytes.fromhex(steps[0]["wire"]))
    _drain(refusing)
    refusal = refusing.refuse()
    refused_client = Connection(
        Role.CLIENT,
        CLIENT_STATIC,
        server_public_key=SERVER_STATIC.public,
        rx_max_frame=CLIENT_RX_MAX_FRAME,
        ephemeral=CLIENT_EPHEMERAL,
    )
    refused_client.send(HELLO)
    refused_client.receive_data(refusal)
    if not isinstance(refused_client.next_event(), Refused):
        raise AssertionError("the client did not see a refusal")

    return {
        "description": (
            "One complete Fleetgate device session, generated by scripts/make_golden.py from "
            "protocol.connection.Connection with fixed keys. Hex strings are raw bytes. 'wire' is "
            "exactly what the sender writes to the TCP stream (frame header included; the "
            "device's first write also carries the 4-byte preamble). See docs/PROTOCOL.md."
        ),
        "protocol_name": PROTOCOL_NAME.decode(),
        "protocol_version": limits.PROTOCOL_VERSION,
        "preamble": PREAMBLE.hex(),
        "prologue": prologue_for(PREAMBLE).hex(),
        "prologue_ascii": prologue_for(PREAMBLE).decode("ascii", "backslashreplace"),
        "keys": {
            "client_static_private": CLIENT_STATIC.private.hex(),
            "client_static_public": CLIENT_STATIC.public.hex(),
            "client_ephemeral_private": CLIENT_EPHEMERAL.private.hex(),
            "client_ephemeral_public": CLIENT_EPHEMERAL.public.hex(),
            "server_static_private": SERVER_STATIC.private.hex(),
            "server_static_public": SERVER_STATIC.public.hex(),
            "server_ephemeral_private": SERVER_EPHEMERAL.private.hex(),
            "server_ephemeral_public": SERVER_EPHEMERAL.public.hex(),
        },
        "client_rx_max_frame": CLIENT_RX_MAX_FRAME,
        "server_rx_max_frame": SERVER_RX_MAX_FRAME,
        "steps": steps,
        "refusal": {
            "description": (
                "The server refuses the same HELLO (for example: unknown device ID or a static "
                "key that does not match the one on record). It writes these bytes, then closes."
            ),
            "client_wire": steps[0]["wire"],
            "server_wire": refusal.hex(),
        },
        "handshake_trace": trace,
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run scripts/make_golden.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
