"""`fleetsim chaos crash-publish`, bounded: kill -9 under publish load loses no acked event."""

from __future__ import annotations

from .support import chaos, failed_checks


def test_no_acked_event_is_lost_to_kill_9() -> None:
    result, report = chaos("crash-publish", "--devices", "10", "--duration", "6", "--kills", "2", limit=120)
    assert result.returncode == 0, failed_checks(report)
    assert report["kills"] == 2 and len(report["restart_s"]) == 2
    assert report["acked"] > 0 and report["missing"] == 0 and report["found"] == report["acked"]
    assert report["server_log"]["tracebacks"] == 0
