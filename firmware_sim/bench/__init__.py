"""Benchmarks of a real `fleetgate serve` process (and of its peers, mosquitto and amqtt).

`python -m firmware_sim.bench SCENARIO` (or `fleetsim bench SCENARIO`); docs/BENCHMARKS.md has
the method, the figures and the command for each. Never part of the test run.
"""
