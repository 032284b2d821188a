"""Fleetgate device link: sans-I/O protocol (Noise IK handshake, frames, msgpack messages, OTA).

Nothing in this package performs I/O, reads a clock or logs: callers feed bytes in
and take bytes out, exactly as with h11.
"""
