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
MAX_SEQ = 2**32 - 1  # uint32 sequence numbers (publish, ping, subscribe)

# Subscriptions and delivered events (messages 0x12-0x15).
# Prefixes one connection may hold at once: Particle's Device OS allows a similar handful of
# subscription handlers. Each is checked against every event of the device's product, so the
# server's cost per event grows with it; a firmware needing more can use a shorter prefix.
MAX_SUBSCRIPTIONS = 12
MAX_SUBSCRIBE_PREFIX = MAX_EVENT_NAME  # UTF-8 bytes; "" matches every event
MAX_EVENT_ID = 2**63 - 1  # the store's event IDs: a signed 64-bit integer anywhere
MAX_SKIPPED = 2**32 - 1  # EVENT.skipped saturates here
# EVENT plaintext around its name and data at the worst case: fixarray header (1) + type (1) +
# event_id as uint64 (9) + str8 header (2) + bin16 header (3) + published_at_ms as uint64 (9) +
# ttl as uint32 (5) + source as bin8 of 12 bytes (14) + to_device (1) + skipped as uint32 (5).
EVENT_FIXED_OVERHEAD = 50
# The smallest rx_max_frame that receives every possible event (16 + 50 + 64 + 1024 = 1154).
MIN_RX_FRAME_ALL_EVENTS = TAG_LEN + EVENT_FIXED_OVERHEAD + MAX_EVENT_NAME + MAX_EVENT_DATA

# Free text (goodbye, OTA refusal, completion and abort details): short, so a misbehaving peer
# cannot fill our logs.
MAX_TEXT_LEN = 128

# OTA firmware transfer (messages 0x20-0x27, protocol/ota.py).
# Largest image: above the application slot of the microcontrollers we target (hundreds of KiB
# to a few MiB), small enough that the server can hash, hold and stream it per device without
# a second thought, and far inside the uint32 offsets on the wire.
MAX_OTA_IMAGE_SIZE = 16 * 1024 * 1024
OTA_SHA256_LEN = 32  # SHA-256 digest of the whole image
OTA_SIGNATURE_LEN = 64  # Ed25519 signature over the whole image
# OTA_CHUNK plaintext around its data at the worst case: fixarray header (1) + type (1) +
# transfer_id as uint32 (5) + offset as uint32 (5). The bin header adds 2 bytes for data of at
# most 255 bytes, 3 for at most 65535 (messages.max_chunk_for_frame does the arithmetic).
OTA_CHUNK_FIXED_OVERHEAD = 12
# Largest chunk: what fits a 65535-byte frame (65535 - 16 tag - 12 - 3 bin16 header = 65504).
MAX_OTA_CHUNK = NOISE_MAX_MESSAGE - TAG_LEN - OTA_CHUNK_FIXED_OVERHEAD - 3
# Chunks in flight. Kept below the server's default outgoing queue (256 messages), so a full
# window plus ordinary traffic never trips the slow-consumer close; 128 chunks of even 4 KiB
# cover any link's bandwidth-delay product we expect from a device.
MAX_OTA_WINDOW = 128
# Longest OTA_DEFER: a device busy for more than a day should refuse instead; the server
# offers again on the next connection anyway.
MAX_OTA_RETRY_AFTER = 24 * 3600
MAX_TRANSFER_ID = 2**32 - 1  # uint32, chosen by the server

# msgpack decoder limits: explicit per type, never sized by the input.
MSGPACK_MAX_STR = 256  # longest string field (claim code, name, detail texts) with slack
MSGPACK_MAX_BIN = MAX_TRANSPORT_PLAINTEXT  # bin fields carry event data and OTA chunks
MSGPACK_MAX_ARRAY = 16  # every message is one flat array of at most 16 items
MSGPACK_MAX_MAP = 0  # no message uses a map
MSGPACK_MAX_EXT = 0  # no message uses extension types
# Arrays nested in one message, the message's own array counting as 1. No version 1 field is an
# array; the slack is for later fields, and a C decoder skips ignored items with a fixed stack.
MSGPACK_MAX_DEPTH = 4
