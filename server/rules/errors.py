"""Domain errors raised by operations: what went wrong, in the domain's terms. The HTTP API maps
each kind to its status (api/errors.py); nothing below api/ knows HTTP."""

from __future__ import annotations


class OperationError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(OperationError):
    """The request names a bad value (the field says which)."""


class NotFound(OperationError):
    """What the request names does not exist (or is not visible to the caller)."""


class Conflict(OperationError):
    """The request contradicts the current state (duplicate, or needs explicit consent)."""


class Forbidden(OperationError):
    """The caller may not do this."""
