"""Domain errors raised by operations; the API maps each to one HTTP status."""

from __future__ import annotations


class OperationError(Exception):
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(OperationError):
    """The request names a bad value (the field says which)."""

    status = 400


class NotFound(OperationError):
    status = 404


class Conflict(OperationError):
    """The request contradicts the current state (duplicate, or needs explicit consent)."""

    status = 409


class Forbidden(OperationError):
    status = 403
