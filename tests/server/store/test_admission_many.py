"""`Store.admission_facts_many`: the HELLOs that arrive together, read in one statement. Each pair
must get exactly what `admission_facts_at` reads for it alone (so `decide` on it is the decision a
lone HELLO gets), and its epoch must still catch an operator's change before READY."""

from __future__ import annotations

import itertools

from server.link.writes import ConfirmSession, EarlierDecision
from server.rules.admission import decide
from server.rules.model import ListState, Policy
from server.store import Store
from server.store.sqlite.admin import ADMISSION_READS_PER_STATEMENT
from tests.server.store.conftest import OpenStore
from tests.server.store.test_admission_epoch import A, B, C, Do, _setup

UNKNOWN = "dd" * 12
# None: no product reported; 3: no such product; 2**40: beyond any product ID.
PAIRS = list(itertools.product((A, B, C, UNKNOWN), (None, 1, 2, 3, 2**40)))


def _one_by_one(store: Store, pairs: list[tuple[str, int | None]]) -> list[object]:
    return [store.admission_facts_at(device, fw) for device, fw in pairs]


def test_many_pairs_in_one_read_are_each_what_a_lone_read_says(open_store: OpenStore) -> None:
    store = open_store()
    _setup(store)  # product 1 auto-approves (A a member, with a team); 2 quarantines
    store.write_batch([Do(lambda tx: tx.set_list_state(2, B, ListState.DENIED, 2.0))])
    asked = [*PAIRS, *reversed(PAIRS), (A, 1), (A, 1)]  # any order, repeats included
    many = store.admission_facts_many(asked)
    assert many == _one_by_one(store, asked)
    # Two HELLOs for products with different policies get each its own decision.
    (_, _, facts_1, product_1), (_, _, facts_2, product_2) = store.admission_facts_many([(B, 1), (B, 2)])
    one, two = decide(facts_1, 1, product_1), decide(facts_2, 2, product_2)
    assert one.privileges and not two.privileges  # auto-approve lets B in; on 2's deny list it is not
    assert store.admission_facts_many([]) == []


def test_more_pairs_than_one_statement_holds(open_store: OpenStore) -> None:
    store = open_store()
    _setup(store)
    asked = [PAIRS[i % len(PAIRS)] for i in range(ADMISSION_READS_PER_STATEMENT * 2 + 7)]
    assert store.admission_facts_many(asked) == _one_by_one(store, asked)


def test_an_operator_change_between_a_batch_read_and_its_confirmation_is_caught(open_store: OpenStore) -> None:
    """B and C at HELLO in one batch, for product 1 (auto-approve): both would join. Before their
    READYs product 1 turns to quarantine: both confirmations must quarantine, not grant what the
    batch read saw; A, confirmed before the change, keeps its decision."""
    store = open_store()
    _setup(store)
    store.import_devices([(C, b"\x01" * 32)], now=1.0)
    earlier = {}
    read = store.admission_facts_many([(A, 1), (B, 1), (C, 1)])
    for device, (epoch, _, facts, product) in zip((A, B, C), read, strict=True):
        assert epoch is not None
        earlier[device] = EarlierDecision(epoch, decide(facts, 1, product), facts.cloud_product_id)
        assert earlier[device].decision.privileges
    first = store.write_batch([ConfirmSession(A, 7, 1, 6, 1, 3.0, earlier=earlier[A])])[0]
    assert isinstance(first, tuple) and first[0] is earlier[A].decision  # nothing moved: reused
    store.write_batch([Do(lambda tx: tx.update_product(1, policy=Policy.QUARANTINE))])
    confirmed = store.write_batch([ConfirmSession(d, 7, 1, 6, 1, 3.0, earlier=earlier[d]) for d in (B, C)])
    for device, result in zip((B, C), confirmed, strict=True):
        assert isinstance(result, tuple) and not result[0].privileges, device
        assert store.list_state(1, device) is ListState.QUARANTINED
