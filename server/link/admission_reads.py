"""The admission reads of the HELLOs that arrive together, in one statement.

In a connection storm the HELLOs of many devices are read in the same wakeup of the event loop.
The first session to ask (the leader) lets the loop run once more, so that every other session
woken with it asks too, then reads all of their facts in one statement (`Store.admission_facts_many`)
and hands each its own; a store whose reads cross the network does that in one worker thread's hop
instead of one per HELLO. The batch changes only how the facts are read: each session still decides
with `authenticate` on its own device's facts, and each fact comes with the admission epoch of the
statement that read it, so the confirming write's check (link/writes.py's `decide_again`) holds.
"""

from __future__ import annotations

from typing import TypeAlias

import trio

from ..rules.admission import DeviceFacts, ProductFacts
from ..store import AsyncStore, StoreClosed
from ..store.records import DeviceRecord

Facts: TypeAlias = tuple[int | None, DeviceRecord | None, DeviceFacts, ProductFacts | None]


class _Asked:
    """One session's question and, once read, its answer (or the read's exception)."""

    __slots__ = ("answer", "device_id", "done", "error", "product_id")

    def __init__(self, device_id: str, product_id: int | None) -> None:
        self.device_id = device_id
        self.product_id = product_id
        self.done = trio.Event()
        self.answer: Facts | None = None
        self.error: BaseException | None = None


class AdmissionReads:
    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self._gathering: list[_Asked] | None = None  # the batch a leader is gathering
        self.statements = 0  # batches read (what tests and benchmarks look at)
        self.largest = 0  # the most HELLOs one batch held

    async def facts(self, device_id: str, product_id: int | None) -> Facts:
        """`Store.admission_facts_at(device_id, product_id)`, read with the others asked in this wakeup."""
        if self._gathering is not None:
            asked = _Asked(device_id, product_id)
            self._gathering.append(asked)
            await asked.done.wait()  # a cancelled session leaves; the leader's answer is dropped
            if asked.error is not None:
                raise asked.error
            assert asked.answer is not None
            return asked.answer
        batch: list[_Asked] = []
        self._gathering = batch
        try:
            # Shielded: the others wait for this read. One more turn of the loop, then the read.
            with trio.CancelScope(shield=True):
                await trio.lowlevel.cancel_shielded_checkpoint()
                self._gathering = None
                answers = await self._read([(device_id, product_id), *((a.device_id, a.product_id) for a in batch)])
        except BaseException as exc:
            self._gathering = None if self._gathering is batch else self._gathering
            # The others end as the leader's read did (a KeyboardInterrupt stays the leader's).
            error = exc if isinstance(exc, Exception) else StoreClosed("the admission read was interrupted")
            for other in batch:
                other.error = error
                other.done.set()
            raise
        for other, answer in zip(batch, answers[1:], strict=True):
            other.answer = answer
            other.done.set()
        return answers[0]

    async def _read(self, requests: list[tuple[str, int | None]]) -> list[Facts]:
        self.statements += 1
        self.largest = max(self.largest, len(requests))
        store = self._store
        sync = store.sync
        # Alone (most HELLOs even in a storm: one arrives per wakeup), the statement of one pair:
        # prepared once, where a VALUES list of each new length is prepared again.
        if len(requests) == 1:
            (device_id, product_id) = requests[0]
            if sync.reads_on_loop:
                return [sync.read_on_loop(lambda: sync.admission_facts_at(device_id, product_id))]
            return [await store.read(sync.admission_facts_at, device_id, product_id)]
        if sync.reads_on_loop:  # a handful of indexed lookups: on the loop (see AsyncStore.read_now)
            return sync.read_on_loop(lambda: sync.admission_facts_many(requests))
        return await store.read(sync.admission_facts_many, requests)
