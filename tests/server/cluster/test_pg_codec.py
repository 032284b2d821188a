"""Control messages as NOTIFY payloads: every message comes back as it was sent, long device lists
are split into payloads PostgreSQL accepts, and no payload makes the decoder raise."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from protocol.codes import OtaAbortReason
from server.cluster import AbortFirmware, ControlMessage, OfferFirmware, ReevaluateDevice, ReevaluateProduct
from server.cluster.messages import SessionReplaced, WakeRollouts, WebhooksChanged
from server.cluster.pg.codec import PAYLOAD_LIMIT, TEXT_LIMIT, decode, encode

device_ids = st.text(alphabet="0123456789abcdef", min_size=24, max_size=24)
texts = st.text(max_size=TEXT_LIMIT)
messages: st.SearchStrategy[ControlMessage] = st.one_of(
    st.builds(ReevaluateDevice, device_ids, texts),
    st.builds(ReevaluateProduct, st.integers(1, 2**53), texts),
    st.builds(
        OfferFirmware, st.none() | st.lists(device_ids, max_size=5).map(tuple), st.none() | st.integers(1, 2**53)
    ),
    st.builds(AbortFirmware, st.lists(device_ids, max_size=5).map(tuple), st.sampled_from(OtaAbortReason), texts),
    st.builds(SessionReplaced, device_ids, st.integers(0, 2**63)),
    st.just(WakeRollouts()),
    st.builds(WebhooksChanged, st.integers(1, 2**53)),
)


@given(messages, st.integers(1, 2**62))
def test_a_message_comes_back_as_sent(message: ControlMessage, seq: int) -> None:
    payloads = list(encode("node-1", iter([seq]).__next__, message))
    assert len(payloads) == 1
    envelope = decode(payloads[0])
    assert envelope is not None
    assert (envelope.node_id, envelope.seq, envelope.message) == ("node-1", seq, message)


@given(st.integers(0, 2000), st.sampled_from(OtaAbortReason))
def test_long_device_lists_are_split_into_payloads_under_the_limit(count: int, reason: OtaAbortReason) -> None:
    devs = tuple(f"{i:024x}" for i in range(count))
    seqs = itertools.count(1)
    for message, rebuild in (
        (OfferFirmware(devs, 7), lambda ids: OfferFirmware(ids, 7)),
        (AbortFirmware(devs, reason, "x" * 900), lambda ids: AbortFirmware(ids, reason, "x" * 900)),
    ):
        payloads = list(encode("n", seqs.__next__, message))
        assert all(len(p.encode()) <= PAYLOAD_LIMIT for p in payloads)
        envelopes = [decode(p) for p in payloads]
        assert all(e is not None for e in envelopes)
        got = [e.message for e in envelopes if e is not None]
        assert [m for m in got if isinstance(m, OfferFirmware | AbortFirmware)] == got
        joined = tuple(d for m in got if isinstance(m, OfferFirmware | AbortFirmware) for d in m.device_ids or ())
        assert joined == devs
        assert got == [rebuild(m.device_ids) for m in got if isinstance(m, OfferFirmware | AbortFirmware)]
        seen = [e.seq for e in envelopes if e is not None]
        assert seen == sorted(set(seen))  # each part its own, increasing seq


def test_a_long_actor_is_cut_to_fit() -> None:
    (payload,) = encode("n", iter([1]).__next__, ReevaluateDevice("d" * 24, "a" * 20_000))
    envelope = decode(payload)
    assert envelope is not None and envelope.message == ReevaluateDevice("d" * 24, "a" * TEXT_LIMIT)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
)
body_keys = st.sampled_from(["t", "dev", "actor", "product", "devs", "reason", "detail", "counter"])
kinds = st.sampled_from(["reeval", "reeval_product", "offer", "abort", "replaced", "wake_rollouts", "other"])


@given(st.text() | st.builds(json.dumps, json_values))
def test_no_payload_makes_the_decoder_raise(payload: str) -> None:
    decode(payload)


@given(st.dictionaries(body_keys, st.none() | st.integers() | st.text() | st.lists(st.text() | st.integers())), kinds)
def test_a_malformed_body_is_none_never_an_exception(body: dict[str, object], kind: str) -> None:
    decode(json.dumps({"n": "x", "s": 1, "m": body | {"t": kind}}))
