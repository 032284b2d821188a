"""Fault drills (`fleetsim chaos SCENARIO`): hostile input, malformed messages, kill -9 under load.

Each scenario is a module with `main(argv) -> int` that prints its figures (docs/RELIABILITY.md).
"""
