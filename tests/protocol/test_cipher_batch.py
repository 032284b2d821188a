"""One AEAD object per batch: a send of many frames and one read's frames each make one
ChaCha20Poly1305 (making it is about half the cost of sealing an ack), and none is kept on the
connection afterwards (its OpenSSL state would cost every idle link ~2.3 KiB)."""

from __future__ import annotations

import sys

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from protocol import limits, noise
from protocol.codes import AckResult, CloseReason
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.messages import Publish, PublishAck
from protocol.noise import CipherState

from .helpers import handshake

PUBLISHES = [Publish(seq, "temp", b"21.5") for seq in range(1, 21)]
ACKS = [PublishAck(seq, AckResult.ACCEPTED) for seq in range(1, 21)]


class AeadCount:
    """Every ChaCha20Poly1305 that protocol.noise makes, kept here to count its other owners."""

    def __init__(self) -> None:
        self.made: list[ChaCha20Poly1305] = []

    def __call__(self, key: bytes) -> ChaCha20Poly1305:
        aead = ChaCha20Poly1305(key)
        self.made.append(aead)
        return aead

    def held_elsewhere(self) -> int:
        # getrefcount counts its argument and this list's reference; anything more is a holder.
        return sum(sys.getrefcount(aead) - 3 for aead in self.made)


@pytest.fixture
def aeads(monkeypatch: pytest.MonkeyPatch) -> AeadCount:
    count = AeadCount()
    monkeypatch.setattr(noise, "ChaCha20Poly1305", count)
    return count


def test_a_batch_of_acks_is_sealed_with_one_aead_object_not_kept(aeads: AeadCount) -> None:
    pair = handshake()
    aeads.made.clear()
    wire = pair.server.send_batch(ACKS)
    assert len(aeads.made) == 1 and aeads.held_elsewhere() == 0
    pair.client.receive_data(bytes(wire))
    assert pair.client.next_events() == ACKS


def test_one_reads_publishes_are_opened_with_one_aead_object_not_kept(aeads: AeadCount) -> None:
    pair = handshake()
    wire = pair.client.send_batch(PUBLISHES)
    aeads.made.clear()
    pair.server.receive_data(bytes(wire[: len(wire) // 2]))
    first = pair.server.next_events()
    pair.server.receive_data(bytes(wire[len(wire) // 2 :]))
    assert first + pair.server.next_events() == PUBLISHES
    assert len(aeads.made) == 2 and aeads.held_elsewhere() == 0  # one per read


def test_a_read_without_a_whole_frame_makes_no_aead_object(aeads: AeadCount) -> None:
    pair = handshake()
    wire = pair.client.send_batch(PUBLISHES[:1])
    aeads.made.clear()
    pair.server.receive_data(bytes(wire[:-1]))
    assert pair.server.next_events() == [] and aeads.made == []


def test_a_forged_frame_in_a_batch_still_closes_with_decrypt_failed() -> None:
    pair = handshake()
    wire = bytearray(pair.client.send_batch(PUBLISHES[:3]))
    wire[-1] ^= 1  # the third frame's tag
    pair.server.receive_data(bytes(wire))
    assert pair.server.next_events() == PUBLISHES[:2]
    with pytest.raises(RemoteProtocolError) as caught:
        pair.server.next_events()
    assert caught.value.reason is CloseReason.DECRYPT_FAILED


def test_a_batch_shares_the_cipher_states_nonce() -> None:
    key = bytes(range(32))
    one, two = CipherState(key), CipherState(key)
    batch = two.batch()
    for text in (b"a", b"bc", b"def"):
        out = bytearray(len(text) + limits.TAG_LEN)
        batch.encrypt_into(b"", text, memoryview(out))
        assert bytes(out) == one.encrypt_with_ad(b"", text)
    with pytest.raises(LocalProtocolError, match="out has"):
        batch.encrypt_into(b"", b"x", memoryview(bytearray(3)))
    assert two.nonce == one.nonce == 3  # the refused frame used no nonce
    assert two.encrypt_with_ad(b"", b"g") == one.encrypt_with_ad(b"", b"g")
    with pytest.raises(LocalProtocolError, match="needs a key"):
        CipherState().batch()
