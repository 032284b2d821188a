"""Fault drills (`fleetsim chaos SCENARIO`): programs that break a real server on purpose and print their figures."""
