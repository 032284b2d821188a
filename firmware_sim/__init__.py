"""Simulated firmware: devices that speak the real protocol over real streams."""
