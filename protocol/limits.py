"""Every size and count limit of the device link, each with the reason for its value."""

from __future__ import annotations

# Protocol major version carried in the preamble and bound into the Noise prologue.
PROTOCOL_VERSION = 1

# Noise caps any message at 65535 bytes; our 2-byte length prefix carries the same cap.
NOISE_MAX_MESSAGE = 65535
# ChaCha20-Poly1305 tag appended to every encrypted payload.
TAG_LEN = 16
# Largest plaintext one transport frame can carry.
MAX_TRANSPORT_PLAINTEXT = NOISE_MAX_MESSAGE - TAG_LEN

# Message 1 = e (32) + encrypted s (32 + 16) + encrypted hello (<= HELLO_MAX_PAYLOAD + 16).
# The hello is a handful of small fields; 320 bytes leaves room for a 64-char claim code
# and later additions while keeping what an unauthenticated peer can make us buffer tiny.
HELLO_MAX_PAYLOAD = 320
MAX_HELLO_FRAME = 32 + 48 + HELLO_MAX_PAYLOAD + TAG_LEN
# Message 2 = e (32) + encrypted welcome.
WELCOME_MAX_PAYLOAD = 320
MAX_WELCOME_FRAME = 32 + WELCOME_MAX_PAYLOAD + TAG_LEN

# The smallest receive limit a device may announce: a welcome-sized frame must always fit.
MIN_RX_FRAME = 512
# Default frame limit the server announces for frames it receives from devices.
SERVER_RX_MAX_FRAME = 4096

# Device identity.
DEVICE_ID_LEN = 12  # Particle's 12-byte ID, shown as 24 lowercase hex characters
PUBLIC_KEY_LEN = 32  # X25519

# Hello fields.
MAX_PRODUCT_ID = 2**31 - 1  # a positive signed 32-bit integer fits every C compiler's int32_t
MAX_FIRMWARE_VERSION = 65535  # Particle product firmware versions are 16-bit
MAX_PLATFORM_ID = 65535
# Replay counter: a uint64 with the top bit clear (stores as a signed 64-bit integer anywhere);
# a microsecond Unix timestamp fits for the next 290,000 years.
MAX_COUNTER = 2**63 - 1
MAX_CLAIM_CODE_LEN = 64  # Particle's claim codes are 63 characters

# Events (Particle's limits).
MAX_EVENT_NAME = 64  # UTF-8 bytes
MAX_EVENT_DATA = 1024  # bytes
MAX_EVENT_TTL = 2**32 - 1  # seconds; 60 is Particle's default
MAX_SEQ = 2**32 - 1  # uint32 sequence numbers (publish, ping)

# Free text (goodbye detail): short, so a misbehaving peer cannot fill our logs.
MAX_TEXT_LEN = 128

# msgpack decoder limits: explicit per type, never sized by the input.
MSGPACK_MAX_STR = 256  # longest string field (claim code, name, goodbye text) with slack
MSGPACK_MAX_BIN = MAX_TRANSPORT_PLAINTEXT  # bin fields carry event data (and later OTA chunks)
MSGPACK_MAX_ARRAY = 16  # every message is one flat array of at most 16 items
MSGPACK_MAX_MAP = 0  # no message uses a map
MSGPACK_MAX_EXT = 0  # no message uses extension types
