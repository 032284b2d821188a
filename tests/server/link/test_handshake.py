"""link/handshake.py's `authenticate` without sockets: one HELLO and the store's facts in, a verdict out."""

from __future__ import annotations

import pytest

from protocol.codes import Status
from protocol.messages import Hello
from server.link.handshake import Refused, authenticate
from server.rules.admission import Decision, DeviceFacts, Policy, ProductFacts, decide
from server.store.records import DeviceRecord

KEY = bytes(range(32))
OTHER_KEY = bytes(32)
DEVICE = bytes.fromhex("0123456789abcdef01234567")


def hello(counter: int = 5, product_id: int | None = None) -> Hello:
    return Hello(DEVICE, product_id, firmware_version=1, platform_id=6, counter=counter)


def record(public_key: bytes | None = KEY, last_counter: int = 0) -> DeviceRecord:
    return DeviceRecord(DEVICE.hex(), public_key, created_at=0.0, last_counter=last_counter)


NO_FACTS = DeviceFacts(cloud_product_id=None)


def test_a_known_device_with_its_key_and_a_new_counter_is_decided() -> None:
    verdict = authenticate(hello(), KEY, record(), NO_FACTS, None, confirmed_counter=0)
    assert isinstance(verdict, Decision) and verdict.status is Status.DEVELOPMENT  # no product reported


def test_the_decision_is_admissions_on_the_facts_handed_in() -> None:
    product = ProductFacts(id=7, policy=Policy.PREADD_ONLY)
    verdict = authenticate(hello(product_id=7), KEY, record(), NO_FACTS, product, confirmed_counter=0)
    assert verdict == decide(NO_FACTS, 7, product) and verdict.product_id == 7


@pytest.mark.parametrize(
    ("device", "key", "reason"),
    [
        (None, KEY, "unknown device ID"),
        (record(public_key=None), KEY, "no public key is registered for this device"),
        (record(), OTHER_KEY, "public key 0000000000000000... does not match the registered key"),
    ],
)
def test_identity_refusals(device: DeviceRecord | None, key: bytes, reason: str) -> None:
    assert authenticate(hello(), key, device, NO_FACTS, None, confirmed_counter=0) == Refused(reason)


@pytest.mark.parametrize(
    ("stored", "confirmed", "counter", "last"),
    [(5, 0, 5, 5), (5, 0, 4, 5), (0, 9, 9, 9), (3, 9, 7, 9), (9, 3, 8, 9)],
)
def test_a_counter_not_above_every_confirmed_one_is_a_replay(
    stored: int, confirmed: int, counter: int, last: int
) -> None:
    verdict = authenticate(hello(counter), KEY, record(last_counter=stored), NO_FACTS, None, confirmed)
    assert verdict == Refused(f"replayed hello: counter {counter} <= last confirmed {last}")


def test_a_counter_above_both_the_store_and_this_process_passes() -> None:
    verdict = authenticate(hello(10), KEY, record(last_counter=9), NO_FACTS, None, confirmed_counter=8)
    assert isinstance(verdict, Decision)


def test_the_key_is_checked_before_the_counter() -> None:
    """A stranger replaying an old HELLO learns nothing about counters: the key fails first."""
    verdict = authenticate(hello(1), OTHER_KEY, record(last_counter=9), NO_FACTS, None, confirmed_counter=0)
    assert isinstance(verdict, Refused) and "does not match" in verdict.reason
