"""`fleetsim chaos junk`, bounded: every kind of hostile handshake bytes against a real server."""

from __future__ import annotations

from firmware_sim.chaos.junk import KINDS

from .support import chaos, failed_checks


def test_junk_before_and_inside_the_handshake_is_shed_and_the_server_keeps_serving() -> None:
    # Silent and dripping sockets last until the server's handshake deadline (10 s today).
    result, report = chaos("junk", "--connections", "64", "--concurrency", "64", "--wait", "15", limit=90)
    assert result.returncode == 0, failed_checks(report)
    assert report["connections"] == 64
    assert set(report["by_kind"]) == set(KINDS)
    assert not any(b.endswith("open") for b in report["behaviours"])
    # A valid HELLO with no READY, or junk where READY belongs: WELCOME, then a typed GOODBYE.
    for kind in ("no_ready", "after_hello"):
        assert all(b.startswith("welcomed, then goodbye ") for b in report["by_kind"][kind]), report["by_kind"]
    assert set(report["by_kind"]["no_ready"]) == {"welcomed, then goodbye handshake_timeout"}
    log = report["server_log"]
    assert log["tracebacks"] == 0 and log["http_5xx"] == 0 and log["errors"] == 0
    assert log["close_reasons"]  # the server logged why it closed each one
    assert report["rss_kib_before"] and report["rss_kib_after"]
