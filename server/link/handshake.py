"""Who is at the other end: one HELLO judged against what the store holds, facts in and a verdict out.

Noise has already proved that the peer holds the static key it sent. `authenticate` decides the rest:
  1. the device ID is known and has a public key registered;
  2. the key Noise proved is that registered key (compared in constant time);
  3. the HELLO's counter is above every counter confirmed before, in the store or in this process
     (a replayed HELLO is refused even while the genuine one's store write is in flight);
  4. admission (`rules.admission.decide`) on the facts read with the device.
The store read is the caller's (link/session.py hands its result in): it waits for nothing, touches
no socket and writes nothing. A refusal's reason goes only to the log; the device is told the bare
refusal.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from protocol.messages import Hello

from ..rules.admission import Decision, DeviceFacts, ProductFacts, decide
from ..store.base import DeviceRecord


@dataclass(frozen=True, slots=True)
class Refused:
    """The HELLO is refused; `reason` is for the log only."""

    reason: str


def authenticate(
    hello: Hello,
    presented_key: bytes,
    record: DeviceRecord | None,
    facts: DeviceFacts,
    product: ProductFacts | None,
    confirmed_counter: int,
) -> Decision | Refused:
    """The admission decision for `hello`, or why it is refused. `presented_key` is the static key
    Noise proved; `confirmed_counter` the highest counter this process has confirmed for the device."""
    if record is None:
        return Refused("unknown device ID")
    if record.public_key is None:
        return Refused("no public key is registered for this device")
    if not hmac.compare_digest(record.public_key, presented_key):
        return Refused(f"public key {presented_key.hex()[:16]}... does not match the registered key")
    last = max(record.last_counter, confirmed_counter)
    if hello.counter <= last:
        return Refused(f"replayed hello: counter {hello.counter} <= last confirmed {last}")
    return decide(facts, hello.product_id, product)
