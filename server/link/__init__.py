"""The device link runtime: accept a TCP connection, run its Noise session, deliver events and firmware."""
