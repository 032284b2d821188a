"""link/ota_delivery.py's OtaDelivery on a stand-in link (its small Protocol), without a session or a socket."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.codes import CloseReason, OtaAbortReason
from protocol.messages import Hello, Message, OtaWindowAck
from server.link.ota_delivery import WINDOW, OtaContext, OtaDelivery
from server.rules.admission import Decision


@dataclass
class StandIn:
    device_id: str = "0123456789abcdef01234567"
    hello: Hello | None = None
    decision: Decision | None = None
    sent: list[Message] = field(default_factory=list)
    closed: list[CloseReason] = field(default_factory=list)

    @property
    def ctx(self) -> OtaContext:
        raise AssertionError("no transfer runs in these tests")

    def enqueue(self, message: Message) -> None:
        self.sent.append(message)

    def request_close(self, reason: CloseReason, detail: str = "") -> None:
        self.closed.append(reason)


async def test_without_a_transfer_abort_and_revoke_tell_the_device_nothing() -> None:
    link = StandIn()
    ota = OtaDelivery(link)
    ota.abort(OtaAbortReason.SUPERSEDED)
    ota.revoke()
    assert link.sent == []


async def test_the_answers_inbox_is_bounded() -> None:
    """A device that sends more OTA answers than any transfer allows is refused, not buffered."""
    ota = OtaDelivery(StandIn())
    room = 2 * WINDOW + 8
    assert all(ota.answer(OtaWindowAck(1, i)) for i in range(room))
    assert not ota.answer(OtaWindowAck(1, room))
