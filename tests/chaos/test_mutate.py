"""The chaos drills' mutations: seeded, bounded, and judged the same way protocol/ judges them."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.chaos.junk import KINDS, behaviour, device_flight, junk_bytes
from firmware_sim.chaos.malformed import expected_rejection
from firmware_sim.chaos.mutate import malformed_payload, mutate_bytes
from firmware_sim.chaos.raw_link import first_flight
from firmware_sim.identity import DeviceIdentity
from protocol import limits
from protocol.codes import CloseReason, Privilege, Status
from protocol.connection import PREAMBLE, Connection, Role
from protocol.errors import RemoteProtocolError
from protocol.messages import Goodbye, Hello, Welcome, decode_message
from protocol.noise import KeyPair


def test_the_same_seed_gives_the_same_mutations() -> None:
    a, b = random.Random(5), random.Random(5)
    assert [malformed_payload(a) for _ in range(50)] == [malformed_payload(b) for _ in range(50)]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32))
def test_a_malformed_payload_is_judged_as_protocol_judges_it(seed: int) -> None:
    payload = malformed_payload(random.Random(seed))
    reason = expected_rejection(payload)
    if reason is CloseReason.FRAME_TOO_LARGE:  # above the server's frame limit whatever it holds
        assert len(payload) + 16 > limits.SERVER_RX_MAX_FRAME
        return
    try:
        decode_message(payload)
    except RemoteProtocolError as exc:
        assert reason is exc.reason
    else:
        assert reason is None


@given(st.binary(max_size=300), st.integers(0, 2**32))
def test_byte_mutations_change_bounded_amounts(data: bytes, seed: int) -> None:
    out = mutate_bytes(random.Random(seed), data)
    assert len(out) <= 2 * len(data) + 24


def test_every_junk_kind_makes_bytes_a_server_must_refuse() -> None:
    identity = DeviceIdentity.generate()
    flight, _ = first_flight(identity, KeyPair.generate().public)
    rng = random.Random(1)
    for kind in KINDS:
        junk = junk_bytes(kind, rng, flight)
        assert junk, kind
        if kind in ("preamble", "oversize"):
            assert junk.startswith(PREAMBLE)


def test_the_servers_answer_to_an_intact_hello_is_read_by_the_devices_connection() -> None:
    key = KeyPair(bytes(range(1, 33)))
    server = Connection(Role.SERVER, key)
    flight, device = device_flight(DeviceIdentity.generate(), key.public)
    server.receive_data(flight)
    assert isinstance(server.next_event(), Hello)
    welcome = server.send(Welcome(Status.OK, Privilege.all(), 7, 30, 75, limits.SERVER_RX_MAX_FRAME, 1))
    goodbye = server.send(Goodbye(CloseReason.HANDSHAKE_TIMEOUT, "no READY"))
    assert behaviour(welcome + goodbye, device) == "welcomed, then goodbye handshake_timeout"
    assert behaviour(b"\x00\x00", device) == "refused"
    assert behaviour(b"", None) == "closed"
