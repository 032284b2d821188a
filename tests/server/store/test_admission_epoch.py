"""The admission epoch (migration 16): every write that changes a fact admission decides on moves
it, in the same transaction, so the confirming write may reuse the HELLO's decision while it has
not moved. A trigger missing for one table or column fails the enumerated walk through every such
write below (checked by removing triggers one at a time); Hypothesis interleaves those writes with a
handshake and checks the confirmation's decision against a fresh read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.link.writes import ConfirmSession, EarlierDecision, decide_again, decide_now
from server.rules.admission import decide
from server.rules.model import ListState, Owner, Policy, Role
from server.store import SQLiteStore, Store, WriteOp
from server.store.tx import StoreTx
from tests.server.store.conftest import OpenStore

A, B, C = "aa" * 12, "bb" * 12, "cc" * 12  # A and B registered; C registered only by an action
KEY = b"\x01" * 32
Action = Callable[[StoreTx], object]


@dataclass(frozen=True)
class Do(WriteOp[object]):
    fn: Action

    def apply(self, tx: StoreTx) -> object:
        return self.fn(tx)


def _setup(store: Store) -> tuple[int, int]:
    store.import_devices([(A, KEY), (B, KEY)], now=1.0)

    def fn(tx: StoreTx) -> tuple[int, int]:
        tx.insert_product(1, "one", "One", Policy.AUTO_APPROVE, 1.0)
        tx.insert_product(2, "two", "Two", Policy.QUARANTINE, 1.0)
        u1 = tx.insert_user("u1", "x", False, 1.0).id
        u2 = tx.insert_user("u2", "x", False, 1.0).id
        tx.team_set(1, u1, Role.DEVELOPER)
        tx.set_membership(A, 1)
        return u1, u2

    users = store.write_batch([Do(fn)])[0]
    assert isinstance(users, tuple)
    return users


def _facts(store: Store) -> list[Any]:
    """What admission sees for every device and firmware product of these tests."""
    out = []
    for device in (A, B, C):
        for fw in (None, 1, 2, 3):
            record, facts, product = store.admission_facts(device, fw)
            out.append((record is not None, facts, product))
    return out


def _epoch(store: Store) -> int:
    epoch = store.admission_epoch()
    assert epoch is not None  # migration 16's row
    return epoch


def _hello(store: Store, device: str, fw: int | None) -> EarlierDecision:
    """What the handshake reads and decides at HELLO."""
    epoch, _, facts, product = store.admission_facts_at(device, fw)
    assert epoch is not None
    return EarlierDecision(epoch, decide(facts, fw, product), facts.cloud_product_id)


def _admission_writes(u1: int, u2: int) -> list[tuple[str, Action]]:
    """Every write the store offers that changes an admission fact, in an order where each does."""
    return [
        ("a device registered", lambda tx: tx.add_device_keys([(C, KEY)], 2.0)),
        ("a device joins a product", lambda tx: tx.set_membership(B, 2)),
        ("a device moves to another product", lambda tx: tx.set_membership(B, 1)),
        ("a device leaves its product", lambda tx: tx.set_membership(B, None)),
        ("a device gets an owner", lambda tx: tx.set_owner(B, Owner("user", u1))),
        ("a device's owner changes (id only)", lambda tx: tx.set_owner(B, Owner("user", u2))),
        ("a device's owner changes (kind only)", lambda tx: tx.set_owner(B, Owner("customer", u2))),
        ("a device loses its owner", lambda tx: tx.set_owner(B, None)),
        ("a device is quarantined", lambda tx: tx.set_list_state(2, B, ListState.QUARANTINED, 2.0)),
        ("a list entry changes", lambda tx: tx.set_list_state(2, B, ListState.DENIED, 2.0)),
        ("denied lists are left", lambda tx: tx.leave_denied_lists(B)),
        ("a device is removed", lambda tx: tx.set_list_state(2, B, ListState.REMOVED, 2.0)),
        ("a list entry is cleared", lambda tx: tx.set_list_state(2, B, None, 2.0)),
        ("a policy changes", lambda tx: tx.update_product(2, policy=Policy.AUTO_APPROVE)),
        ("a product is created", lambda tx: tx.insert_product(3, "three", "Three", Policy.QUARANTINE, 2.0)),
        ("a team member is added", lambda tx: tx.team_set(1, u2, Role.SUPPORT)),
        ("a team member is removed", lambda tx: tx.team_remove(1, u1)),
    ]


def test_every_admission_write_moves_the_epoch(open_store: OpenStore) -> None:
    store = open_store()
    u1, u2 = _setup(store)
    for name, action in _admission_writes(u1, u2):
        before, epoch = _facts(store), _epoch(store)
        store.write_batch([Do(action)])
        assert _facts(store) != before, f"{name}: the walk is meant to change a fact here"
        assert _epoch(store) > epoch, f"{name} changed an admission fact without moving the epoch"


def test_what_admission_does_not_read_leaves_the_epoch(open_store: OpenStore) -> None:
    """The confirming write's own writes keep the epoch: else it would never skip the second read."""
    store = open_store()
    _setup(store)
    epoch = store.admission_epoch()
    store.write_batch(
        [
            Do(
                lambda tx: tx.mark_connected(
                    A, counter=5, firmware_version=2, platform_id=6, firmware_product_id=1, at=3.0
                )
            ),
            Do(lambda tx: tx.append_audit(3.0, "device", "admission", product_id=1, device_id=A)),
            Do(lambda tx: tx.update_product(1, name="Renamed")),
            Do(lambda tx: tx.update_device_fields(A, {"name": "thermostat", "notes": "n"})),
            Do(lambda tx: tx.mark_disconnected(A, 4.0)),
        ]
    )
    assert store.admission_epoch() == epoch


def test_the_epoch_is_read_with_the_facts(open_store: OpenStore) -> None:
    store = open_store()
    _setup(store)
    epoch, record, facts, product = store.admission_facts_at(A, 2)
    assert epoch == store.admission_epoch()
    assert (record, facts, product) == store.admission_facts(A, 2)


def test_a_confirmation_decides_again_when_an_operator_acted_after_the_hello(open_store: OpenStore) -> None:
    """B says product 1 (auto-approve) at HELLO: OK with all privileges. Before READY the product
    turns to quarantine; the confirmation must quarantine it, not grant what the HELLO saw."""
    store = open_store()
    _setup(store)
    earlier = _hello(store, B, 1)
    assert earlier.decision.privileges  # auto-approve would let it join
    store.write_batch([Do(lambda tx: tx.update_product(1, policy=Policy.QUARANTINE))])
    confirmed = store.write_batch([ConfirmSession(B, 7, 1, 6, 1, 3.0, earlier=earlier)])[0]
    assert isinstance(confirmed, tuple)
    assert not confirmed[0].privileges
    assert store.list_state(1, B) is ListState.QUARANTINED


def test_an_unchanged_epoch_reuses_the_earlier_decision(open_store: OpenStore) -> None:
    store = open_store()
    _setup(store)
    earlier = _hello(store, A, 1)

    def both(tx: StoreTx) -> bool:
        again = decide_again(tx, A, 1, earlier)
        return again[0] is earlier.decision and again == decide_now(tx, A, 1)

    assert store.write_batch([Do(both)]) == [True]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.integers(min_value=0, max_value=16), max_size=8),
    st.lists(st.integers(min_value=0, max_value=16), max_size=8),
    st.sampled_from([A, B, C]),
    st.sampled_from([None, 1, 2, 3]),
)
def test_operator_writes_interleaved_with_a_handshake(
    tmp_path_factory: pytest.TempPathFactory, before: list[int], between: list[int], device: str, fw: int | None
) -> None:
    """Any writes before the HELLO's read and between it and READY: the confirmation's decision is
    the one a fresh read would give, whether or not the epoch let it skip the read."""
    store = SQLiteStore(Path(tmp_path_factory.mktemp("epoch")) / "fleetgate.db")
    try:
        u1, u2 = _setup(store)
        writes = [action for _, action in _admission_writes(u1, u2)]
        for i in before:
            store.write_batch([Do(writes[i])])
        earlier = _hello(store, device, fw)
        for i in between:
            store.write_batch([Do(writes[i])])

        def confirm(tx: StoreTx) -> bool:
            return decide_again(tx, device, fw, earlier) == decide_now(tx, device, fw)

        assert store.write_batch([Do(confirm)]) == [True]
    finally:
        store.close()
