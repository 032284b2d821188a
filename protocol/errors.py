"""Protocol errors, split by who is at fault (the h11 convention)."""

from __future__ import annotations

from .codes import CloseReason


class ProtocolError(Exception):
    """Base class: something about the link is wrong; the connection cannot continue."""

    def __init__(self, message: str, reason: CloseReason = CloseReason.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.reason = reason


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow (a bug in our caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; `reason` says what kind."""
