"""Noise_IK_25519_ChaChaPoly_SHA256 against the public cacophony vectors, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.codes import CloseReason
from protocol.errors import RemoteProtocolError
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


# RFC 7748 section 6.1: Alice's and Bob's key pairs and their shared secret.
_ALICE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
_ALICE_PUBLIC = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
_BOB = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
_BOB_PUBLIC = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
_SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def test_x25519_matches_rfc_7748() -> None:
    alice, bob = KeyPair(bytes.fromhex(_ALICE)), KeyPair(bytes.fromhex(_BOB))
    assert (alice.public.hex(), bob.public.hex()) == (_ALICE_PUBLIC, _BOB_PUBLIC)
    assert alice.dh(bob.public).hex() == bob.dh(alice.public).hex() == _SHARED
    fresh = KeyPair.generate()
    assert fresh.public == KeyPair(fresh.private).public and fresh.dh(alice.public) == alice.dh(fresh.public)


# Points of small order on Curve25519 (and their non-canonical encodings): a DH with any of them
# is all zero, which would let a peer force a known key.
LOW_ORDER = [
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",
    "ed" + "ff" * 30 + "7f",
    "ee" + "ff" * 30 + "7f",
]


@pytest.mark.parametrize("point", LOW_ORDER)
def test_a_low_order_public_key_is_refused(point: str) -> None:
    with pytest.raises(RemoteProtocolError) as raised:
        KeyPair.generate().dh(bytes.fromhex(point))
    assert raised.value.reason is CloseReason.AUTH_FAILED and "low-order" in str(raised.value)


def test_a_low_order_ephemeral_key_in_message_1_is_refused() -> None:
    server = KeyPair.generate()
    resp = HandshakeIK(initiator=False, static=server, ephemeral=KeyPair.generate(), prologue=b"")
    with pytest.raises(RemoteProtocolError) as raised:
        resp.read_message_1(bytes(32) + bytes(48 + 16))  # e = 0, then s and a payload tag
    assert raised.value.reason is CloseReason.AUTH_FAILED


@pytest.mark.parametrize("length", [0, 31, 33])
def test_a_public_key_of_the_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(RemoteProtocolError, match=f"{length} bytes"):
        KeyPair.generate().dh(b"\x09" * length)
