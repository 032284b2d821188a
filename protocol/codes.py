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


class SubscribeResult(IntEnum):
    """Outcome of a SUBSCRIBE or UNSUBSCRIBE, carried in SUBSCRIBE_ACK. Nothing changes unless ACCEPTED."""

    ACCEPTED = 0  # the prefix is held (SUBSCRIBE, also when it already was) or no longer held (UNSUBSCRIBE)
    TOO_MANY = 1  # the connection already holds MAX_SUBSCRIPTIONS prefixes; unsubscribe one first
    NOT_PERMITTED = 2  # this connection can never receive events (development firmware); do not retry on it


class OtaRefusal(IntEnum):
    """Why a device refuses an OTA_OFFER (OTA_REFUSE.reason). Refused offers are not retried as is."""

    NO_SPACE = 0  # the image does not fit the device's update storage
    WRONG_PLATFORM = 1  # the image is built for another hardware platform
    WRONG_PRODUCT = 2  # the image belongs to another product
    BAD_SIGNATURE = 3  # the device requires a signed image and the offer carries no signature
    BAD_HASH = 4  # the device will not take this sha256 (e.g. one it already found corrupt)
    BUSY = 5  # the device cannot update now and cannot say when (use OTA_DEFER when it can)
    DOWNGRADE_NOT_ALLOWED = 6  # the offered version is older than the running one
    OTHER = 7  # anything else; the detail text says what


class OtaResult(IntEnum):
    """How a transfer ended at the device (OTA_COMPLETE.status)."""

    VERIFIED = 0  # sha256 (and the signature, when checked) matched; the device will reboot into it
    HASH_MISMATCH = 1  # the received image's sha256 differs from the offer's
    SIGNATURE_INVALID = 2  # the Ed25519 signature does not verify with the device's key
    WRITE_FAILED = 3  # the device could not store a chunk
    BAD_CHUNK = 4  # a chunk broke the transfer rules (gap, overlap, too long, past the end)


class OtaAbortReason(IntEnum):
    """Why the server abandons a transfer (OTA_ABORT.reason). The device keeps what it stored."""

    PRIVILEGE_REVOKED = 0  # the connection lost the OTA privilege
    SUPERSEDED = 1  # a different image is now this device's target
    ROLLOUT_PAUSED = 2  # an operator paused the rollout; it will be offered again later
    ROLLOUT_ABORTED = 3  # an operator stopped the rollout for good
    TIMEOUT = 4  # the device did not acknowledge or complete in time
    SERVER_SHUTDOWN = 5  # the server is stopping
