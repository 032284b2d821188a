"""link/admission_reads.py: the HELLOs asked in one wakeup are read in one statement, each session
gets its own device's facts, and a failed read strands nobody. On both
stores (PostgreSQL reads in a worker thread: one hop for the batch)."""

from __future__ import annotations

import trio

from server.link.admission_reads import AdmissionReads, Facts
from server.rules.admission import decide
from server.store import AsyncStore, Store
from server.store.sqlite.admin import ADMISSION_READS_PER_STATEMENT
from tests.server.store.conftest import OpenStore, open_store  # noqa: F401 (the fixture)
from tests.server.store.test_admission_epoch import A, B, C, _setup

ASKED = [(A, 1), (B, 1), (B, 2), (C, None), (A, 3)]


async def _ask_together(reads: AdmissionReads, asked: list[tuple[str, int | None]]) -> list[Facts | None]:
    answers: list[Facts | None] = [None] * len(asked)

    async def ask(i: int) -> None:
        answers[i] = await reads.facts(*asked[i])

    async with trio.open_nursery() as nursery:
        for i in range(len(asked)):
            nursery.start_soon(ask, i)  # all run in the same wakeup
    return answers


def _opened(open_store: OpenStore) -> Store:  # noqa: F811
    store = open_store()
    _setup(store)  # product 1 auto-approves, 2 quarantines
    return store


async def test_the_hellos_of_one_wakeup_are_one_read_each_with_its_own_facts(open_store: OpenStore) -> None:  # noqa: F811
    store = _opened(open_store)
    reads = AdmissionReads(AsyncStore(store))
    answers = await _ask_together(reads, ASKED)
    assert (reads.statements, reads.largest) == (1, len(ASKED))
    assert answers == [store.admission_facts_at(d, fw) for d, fw in ASKED]
    # B for product 1 (auto-approve) and for product 2 (quarantine): each its own decision.
    decisions = [decide(a[2], fw, a[3]) for a, (_, fw) in zip(answers, ASKED, strict=True) if a is not None]
    assert decisions[1].privileges and not decisions[2].privileges
    # A HELLO alone, later, is a batch of one.
    assert await reads.facts(A, 1) == store.admission_facts_at(A, 1)
    assert reads.statements == 2


async def test_more_hellos_than_one_statement(open_store: OpenStore) -> None:  # noqa: F811
    store = _opened(open_store)
    reads = AdmissionReads(AsyncStore(store))
    asked = [ASKED[i % len(ASKED)] for i in range(ADMISSION_READS_PER_STATEMENT + 3)]
    assert await _ask_together(reads, asked) == [store.admission_facts_at(d, fw) for d, fw in asked]
    assert reads.statements == 1


async def test_a_failed_read_reaches_every_session_of_the_batch(open_store: OpenStore) -> None:  # noqa: F811
    store = _opened(open_store)
    reads = AdmissionReads(AsyncStore(store))
    store.close()  # every read now fails
    failures: list[BaseException] = []

    async def ask(device: str) -> None:
        try:
            await reads.facts(device, 1)
        except Exception as exc:  # which one is the engine's
            failures.append(exc)

    with trio.fail_after(10):  # a stranded waiter would hang here
        async with trio.open_nursery() as nursery:
            for device in (A, B, C):
                nursery.start_soon(ask, device)
    assert len(failures) == 3 and reads.statements == 1
    assert all(type(f) is type(failures[0]) for f in failures)
