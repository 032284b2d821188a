"""The golden session (tests/vectors/golden_session.json) replays byte for byte.

The file is what docs/PROTOCOL.md quotes and what a C implementation is checked against, so
any change to the wire format shows up here first. Regenerate it with scripts/make_golden.py
only for a deliberate protocol change.
"""

from __future__ import annotations

import importlib.util
import json
from enum import IntEnum
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from protocol.codes import Privilege
from protocol.connection import PREAMBLE, Connection, ConnectionClosed, Event, NeedData, Refused, Role, State
from protocol.framing import REFUSAL_FRAME
from protocol.messages import Hello, Message, Ready, Welcome, decode_message, encode_message
from protocol.noise import PROTOCOL_NAME, KeyPair

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_PATH = ROOT / "tests" / "vectors" / "golden_session.json"
GOLDEN: dict[str, Any] = json.loads(GOLDEN_PATH.read_text())
STEPS: list[dict[str, Any]] = GOLDEN["steps"]
C2S = "client->server"
S2C = "server->client"
CHUNK_SIZES = [1, 3, 7, 64, 1 << 20]


def _key(name: str) -> KeyPair:
    return KeyPair(bytes.fromhex(GOLDEN["keys"][f"{name}_private"]))


def _client() -> Connection:
    return Connection(
        Role.CLIENT,
        _key("client_static"),
        server_public_key=bytes.fromhex(GOLDEN["keys"]["server_static_public"]),
        rx_max_frame=GOLDEN["client_rx_max_frame"],
        ephemeral=_key("client_ephemeral"),
    )


def _server() -> Connection:
    return Connection(
        Role.SERVER,
        _key("server_static"),
        rx_max_frame=GOLDEN["server_rx_max_frame"],
        ephemeral=_key("server_ephemeral"),
    )


def _message(step: dict[str, Any]) -> Message:
    return decode_message(bytes.fromhex(step["plaintext"]))


def _as_json(message: Message) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.hex()
        if isinstance(value, IntEnum | Privilege):
            return int(value)
        return value

    return {
        "type": message.TYPE.name,
        "type_code": int(message.TYPE),
        "fields": {name: plain(getattr(message, name)) for name in message._NAMES},
    }


def _wire(step: dict[str, Any]) -> bytes:
    return bytes.fromhex(step["wire"])


def _drain(conn: Connection) -> list[Event]:
    """Events ready now; stops at NEED_DATA or once the link is closed (not repeating the close)."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if isinstance(event, NeedData):
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed | Refused) or conn.state is State.CLOSED:
            return events


def _feed(conn: Connection, data: bytes, chunk: int) -> list[Event]:
    events: list[Event] = []
    for start in range(0, len(data), chunk):
        conn.receive_data(data[start : start + chunk])
        events.extend(_drain(conn))
    return events


def _load_generator() -> ModuleType:
    path = ROOT / "scripts" / "make_golden.py"
    spec = importlib.util.spec_from_file_location("make_golden", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the file itself


def test_header() -> None:
    assert GOLDEN["protocol_name"] == PROTOCOL_NAME.decode()
    assert bytes.fromhex(GOLDEN["preamble"]) == PREAMBLE == b"FG\x00\x01"
    assert bytes.fromhex(GOLDEN["prologue"]) == b"fleetgate/device-link" + PREAMBLE
    for name in ("client_static", "client_ephemeral", "server_static", "server_ephemeral"):
        assert _key(name).public.hex() == GOLDEN["keys"][f"{name}_public"]


def test_session_shape() -> None:
    expected = [
        (C2S, "HELLO"),
        (S2C, "WELCOME"),
        (C2S, "READY"),
        (C2S, "PUBLISH"),
        (S2C, "PUBLISH_ACK"),
        (C2S, "PING"),
        (S2C, "PONG"),
        (S2C, "STATUS"),
        (C2S, "GOODBYE"),
    ]
    assert [(s["direction"], s["message"]["type"]) for s in STEPS] == expected
    hello = _message(STEPS[0])
    assert isinstance(hello, Hello)
    assert hello.product_id is not None and hello.claim_code is None


def test_regenerating_gives_identical_file() -> None:
    generator = _load_generator()
    document: dict[str, Any] = generator.build()
    assert document == GOLDEN
    assert generator.render(document) == GOLDEN_PATH.read_text()


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"{s['index']}-{s['message']['type']}")
def test_plaintext_matches_fields(step: dict[str, Any]) -> None:
    message = _message(step)
    assert _as_json(message) == step["message"]
    assert encode_message(message).hex() == step["plaintext"]


def test_frames_are_length_prefixed() -> None:
    assert _wire(STEPS[0])[:4] == PREAMBLE
    for step in STEPS:
        wire = _wire(step)
        body = wire[4:] if step["index"] == 0 else wire
        assert int.from_bytes(body[:2], "big") == len(body) - 2 == step["frame_length"]


def test_transport_frames_use_split_keys_and_counter_nonces() -> None:
    """Each transport frame is ChaCha20-Poly1305(k, 0x00000000 || LE64(n), ad=b"", plaintext)."""
    split = GOLDEN["handshake_trace"]["split"]
    keys = {C2S: bytes.fromhex(split["k1_client_to_server"]), S2C: bytes.fromhex(split["k2_server_to_client"])}
    nonces = {C2S: 0, S2C: 0}
    for step in STEPS[2:]:
        direction = step["direction"]
        assert step["nonce"] == nonces[direction]
        nonce = b"\x00\x00\x00\x00" + nonces[direction].to_bytes(8, "little")
        body = _wire(step)[2:]
        assert ChaCha20Poly1305(keys[direction]).decrypt(nonce, body, b"").hex() == step["plaintext"]
        nonces[direction] += 1


def test_handshake_message_layout() -> None:
    trace = GOLDEN["handshake_trace"]
    m1 = _wire(STEPS[0])[6:]
    assert m1.hex() == trace["message_1"]
    noise = STEPS[0]["noise"]
    assert noise["e"] == GOLDEN["keys"]["client_ephemeral_public"]
    assert len(bytes.fromhex(noise["encrypted_s"])) == 48
    assert m1.hex() == noise["e"] + noise["encrypted_s"] + noise["encrypted_payload"]
    assert len(bytes.fromhex(noise["encrypted_payload"])) == len(bytes.fromhex(STEPS[0]["plaintext"])) + 16
    m2 = _wire(STEPS[1])[2:]
    assert m2.hex() == trace["message_2"]
    assert STEPS[1]["noise"]["e"] == GOLDEN["keys"]["server_ephemeral_public"]
    assert len(m2) == 32 + len(bytes.fromhex(STEPS[1]["plaintext"])) + 16


# ---------------------------------------------------------------- replay through Connection


def test_replay_step_by_step() -> None:
    """Both sides, fresh, with the recorded keys: every send gives the recorded bytes."""
    client, server = _client(), _server()
    for step in STEPS:
        sender, receiver = (client, server) if step["direction"] == C2S else (server, client)
        message = _message(step)
        assert sender.send(message).hex() == step["wire"]
        receiver.receive_data(_wire(step))
        assert _drain(receiver) == [message]
    assert client.state is State.CLOSED and server.state is State.CLOSED
    assert server.hello == _message(STEPS[0])
    assert server.remote_static_key == bytes.fromhex(GOLDEN["keys"]["client_static_public"])


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_server_decodes_recorded_client_bytes(chunk: int) -> None:
    server = _server()
    client_steps = [s for s in STEPS if s["direction"] == C2S]
    assert _feed(server, _wire(client_steps[0]), chunk) == [_message(client_steps[0])]
    # The server must answer the hello before it reads on; its bytes match the recording too.
    welcome = STEPS[1]
    assert isinstance(_message(welcome), Welcome)
    assert server.send(_message(welcome)).hex() == welcome["wire"]
    rest = b"".join(_wire(s) for s in client_steps[1:])
    assert _feed(server, rest, chunk) == [_message(s) for s in client_steps[1:]]
    assert server.state is State.CLOSED  # the device said GOODBYE
    assert isinstance(server.next_event(), ConnectionClosed)


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_client_decodes_recorded_server_bytes(chunk: int) -> None:
    client = _client()
    assert client.send(_message(STEPS[0])).hex() == STEPS[0]["wire"]
    server_steps = [s for s in STEPS if s["direction"] == S2C]
    assert _feed(client, _wire(server_steps[0]), chunk) == [_message(server_steps[0])]
    ready = STEPS[2]
    assert isinstance(_message(ready), Ready)
    assert client.send(_message(ready)).hex() == ready["wire"]
    rest = b"".join(_wire(s) for s in server_steps[1:])
    assert _feed(client, rest, chunk) == [_message(s) for s in server_steps[1:]]
    assert client.state is State.OPEN
    client.receive_data(b"")
    assert isinstance(client.next_event(), ConnectionClosed)


def test_refusal() -> None:
    refusal = GOLDEN["refusal"]
    assert bytes.fromhex(refusal["server_wire"]) == REFUSAL_FRAME == b"\x00\x00"
    server = _server()
    server.receive_data(bytes.fromhex(refusal["client_wire"]))
    assert _drain(server) == [_message(STEPS[0])]
    assert server.refuse().hex() == refusal["server_wire"]
    client = _client()
    assert client.send(_message(STEPS[0])).hex() == refusal["client_wire"]
    client.receive_data(bytes.fromhex(refusal["server_wire"]))
    assert isinstance(client.next_event(), Refused)
    assert client.state is State.CLOSED
