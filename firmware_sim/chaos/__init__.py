"""Fault drills: programs that attack a running server and print what it withstood."""
