"""NodeControl acts on the live sessions this node holds: a session replaced on another node closes here."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from protocol.codes import CloseReason, OtaAbortReason
from protocol.messages import Hello
from server.cluster.messages import SessionReplaced
from server.link.control import NodeControl
from server.link.registry import SessionRegistry
from server.rollouts.wakeup import Wakeup
from server.rules.admission import Decision
from server.store import AsyncStore

DEVICE = "aa" * 12


@dataclass
class HeldSession:
    """A live session as the registry holds it: only what NodeControl may use."""

    device_id: str
    counter: int
    cloud_product_id: int | None = None
    closed: list[CloseReason] = field(default_factory=list)

    @property
    def hello(self) -> Hello:
        return Hello(bytes.fromhex(self.device_id), None, 1, 6, self.counter)

    @property
    def decision(self) -> Decision | None:
        return None

    @property
    def confirmed_in_store(self) -> bool:
        return True

    def request_close(self, reason: CloseReason, detail: str = "") -> None:
        self.closed.append(reason)

    def offer_firmware(self) -> None: ...

    def abort_firmware(self, reason: OtaAbortReason, detail: str = "") -> None: ...

    def update_decision(self, decision: Decision, cloud_product_id: int | None) -> None: ...

    def products_involved(self) -> set[int]:
        return set()


@dataclass
class Node:
    store: AsyncStore
    registry: SessionRegistry = field(default_factory=SessionRegistry)
    rollout_wakeup: Wakeup = field(default_factory=Wakeup)
    node_id: str | None = None  # one process


async def test_a_session_replaced_elsewhere_closes_only_when_its_hello_is_older(writer_store: AsyncStore) -> None:
    node = Node(writer_store)
    control = NodeControl(node)
    held = HeldSession(DEVICE, counter=7)
    node.registry.register(held, 7)

    await control.handle(SessionReplaced(DEVICE, 7))  # its own confirmation, announced: not a newer one
    await control.handle(SessionReplaced(DEVICE, 5))  # an older hello (a late or replayed notice)
    await control.handle(SessionReplaced("bb" * 12, 9))  # another device
    assert held.closed == []

    await control.handle(SessionReplaced(DEVICE, 8))
    assert held.closed == [CloseReason.REPLACED]
    await trio.lowlevel.checkpoint()
