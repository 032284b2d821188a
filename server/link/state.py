"""One connection's life after the bytes: its stage, and why it ends. Data only; tested without bytes.

Rules (protocol/connection.py's `State` is the wire's; this is what the server has done about it):
  - A connection starts in HANDSHAKE: not in the registry, nothing written to the store.
  - READY moves it to CONFIRMING: it is registered (replacing an older connection of the device)
    and the confirming transaction is submitted.
  - That transaction's commit moves it to CONFIRMED: what the store says of the device (its running
    firmware, above all) is this connection's, so firmware offers may be planned from here on.
  - Closing is not a stage: it can begin in any stage, the first reason given wins, and from then
    on nothing more is queued (the last words are the GOODBYE or the refusal).
Every other step is a bug in the caller and raises.
"""

from __future__ import annotations

import enum
from typing import Protocol

from protocol.codes import CloseReason
from protocol.messages import Hello

from ..rules.admission import Decision


class Stage(enum.Enum):
    HANDSHAKE = "handshake"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"


class Step(enum.Enum):
    READY = "ready"  # the device confirmed the handshake and the session registered
    COMMITTED = "committed"  # the confirming transaction committed


# Every transition, as data (as h11's _state.py).
TRANSITIONS: dict[tuple[Stage, Step], Stage] = {
    (Stage.HANDSHAKE, Step.READY): Stage.CONFIRMING,
    (Stage.CONFIRMING, Step.COMMITTED): Stage.CONFIRMED,
}


class LinkFacts(Protocol):
    """What a connection's helpers (delivery, OTA) read of it: who it is, what its HELLO said,
    and what admission granted it."""

    @property
    def device_id(self) -> str: ...

    @property
    def hello(self) -> Hello | None: ...

    @property
    def decision(self) -> Decision | None: ...


class InvalidStep(RuntimeError):
    """A step the table does not allow from the current stage: a server bug."""


class LinkState:
    """A connection's stage and close reason. link/session.py's DeviceSession is one (a base class,
    not an object of its own: tens of thousands of connections are live at once)."""

    __slots__ = ("close_detail", "close_reason", "stage")

    def __init__(self) -> None:
        self.stage = Stage.HANDSHAKE
        self.close_reason: CloseReason | None = None  # read on every enqueue: a plain attribute
        self.close_detail = ""

    def advance(self, step: Step) -> None:
        try:
            self.stage = TRANSITIONS[self.stage, step]
        except KeyError:
            raise InvalidStep(f"{step.name} in stage {self.stage.name}") from None

    def set_close_reason(self, reason: CloseReason, detail: str = "") -> bool:
        """Begin closing for `reason`; False (and nothing changes) if a reason was already given.
        It only records: the session's `request_close` also cancels what is running."""
        if self.close_reason is not None:
            return False
        self.close_reason = reason
        self.close_detail = detail
        return True

    @property
    def registered(self) -> bool:
        """READY was received: the session is (or was, until replaced) the device's live one."""
        return self.stage is not Stage.HANDSHAKE

    @property
    def confirmed(self) -> bool:
        return self.stage is Stage.CONFIRMED
