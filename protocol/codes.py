"""Numeric codes that travel on the wire: statuses, privileges, close reasons, ack results.

Values are part of the protocol (docs/PROTOCOL.md lists them); never renumber one.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Status(IntEnum):
    """The device's admission status for this connection (decided by the server)."""

    OK = 0  # firmware product == cloud product: full product privileges
    DEVELOPMENT = 1  # firmware reports no product: no product privileges
    LIMITED = 2  # the firmware names an unknown product, or a pre-add-only product
    QUARANTINED = 3  # awaiting an operator's decision
    DENIED = 4  # on the product's Denied list


class Privilege(IntFlag):
    """Product privileges held by one connection."""

    NONE = 0
    OTA = 1  # may receive the product's firmware
    PRODUCT_EVENTS = 2  # events reach the product's event stream
    CLAIM = 4  # may be claimed by a customer of the product
    WEBHOOKS = 8  # events trigger the product's webhooks

    @classmethod
    def all(cls) -> Privilege:
        return cls.OTA | cls.PRODUCT_EVENTS | cls.CLAIM | cls.WEBHOOKS


class CloseReason(IntEnum):
    """Why a connection ended. Sent in GOODBYE and written to the server log."""

    NORMAL = 0  # orderly goodbye
    PROTOCOL_ERROR = 1  # malformed frame, preamble or message sequence
    HANDSHAKE_TIMEOUT = 2  # handshake not completed before the deadline
    IDLE_TIMEOUT = 3  # nothing received for longer than the idle timeout
    SLOW_CONSUMER = 4  # the peer did not read fast enough; its queue overflowed
    REPLACED = 5  # a newer connection of the same device took over
    SERVER_SHUTDOWN = 6  # the server is stopping
    FRAME_TOO_LARGE = 7  # a frame length above the receiver's limit
    MESSAGE_INVALID = 8  # a message that does not decode or violates a field limit
    UNEXPECTED_MESSAGE = 9  # a valid message in the wrong state or direction
    UNSUPPORTED_VERSION = 10  # the preamble names a protocol version we do not speak (log only)
    AUTH_FAILED = 11  # handshake refused (log only: the device sees a bare refusal)
    DECRYPT_FAILED = 12  # a transport frame failed authentication
    CLIENT_ERROR = 13  # the device ends the link because of its own failure
    CONNECTION_LOST = 14  # the byte stream ended without GOODBYE (log only, never sent)


class AckResult(IntEnum):
    """Outcome of a PUBLISH, carried in PUBLISH_ACK."""

    ACCEPTED = 0  # stored; will be delivered where the device's privileges allow
    SLOW_DOWN = 1  # rate limit hit: not stored, retry later
    REJECTED = 2  # refused (e.g. a reserved event name); do not retry
