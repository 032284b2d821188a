"""Noise_IK_25519_ChaChaPoly_SHA256 against the public cacophony vectors, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.noise import HandshakeIK, KeyPair

VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).parent.parent / "vectors" / "noise_ik.json").read_text())[
    "vectors"
]


def test_vectors_present() -> None:
    assert VECTORS and all(v["protocol_name"] == "Noise_IK_25519_ChaChaPoly_SHA256" for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["protocol_name"])
def test_vector(vector: dict[str, Any]) -> None:
    b = bytes.fromhex
    init = HandshakeIK(
        initiator=True,
        static=KeyPair(b(vector["init_static"])),
        ephemeral=KeyPair(b(vector["init_ephemeral"])),
        remote_static=b(vector["init_remote_static"]),
        prologue=b(vector["init_prologue"]),
    )
    resp = HandshakeIK(
        initiator=False,
        static=KeyPair(b(vector["resp_static"])),
        ephemeral=KeyPair(b(vector["resp_ephemeral"])),
        prologue=b(vector["resp_prologue"]),
    )
    messages = vector["messages"]
    m1 = init.write_message_1(b(messages[0]["payload"]))
    assert m1.hex() == messages[0]["ciphertext"]
    assert resp.read_message_1(m1).hex() == messages[0]["payload"]
    m2 = resp.write_message_2(b(messages[1]["payload"]))
    assert m2.hex() == messages[1]["ciphertext"]
    assert init.read_message_2(m2).hex() == messages[1]["payload"]
    assert init.handshake_hash.hex() == vector["handshake_hash"]
    assert resp.handshake_hash.hex() == vector["handshake_hash"]

    i_send, i_recv = init.split()
    r_send, r_recv = resp.split()
    for index, message in enumerate(messages[2:]):
        sender, receiver = (i_send, r_recv) if index % 2 == 0 else (r_send, i_recv)
        ciphertext = sender.encrypt_with_ad(b"", b(message["payload"]))
        assert ciphertext.hex() == message["ciphertext"]
        assert receiver.decrypt_with_ad(b"", ciphertext).hex() == message["payload"]
