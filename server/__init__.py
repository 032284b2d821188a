"""Fleetgate server: Trio I/O and policy around the sans-I/O `protocol` package."""
