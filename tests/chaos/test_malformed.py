"""`fleetsim chaos malformed`, bounded: malformed messages sealed with the session's real cipher."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli_support import serving

from .support import chaos, failed_checks


def test_every_malformed_message_ends_in_a_typed_goodbye_and_the_server_keeps_serving() -> None:
    result, report = chaos("malformed", "--messages", "300", "--concurrency", "8", "--seed", "3", limit=60)
    assert result.returncode == 0, failed_checks(report)
    assert report["messages"] == 300 and report["rejected_by_protocol"] > 100
    assert report["untyped_closes"] == 0
    outcomes = report["outcomes"]
    assert outcomes.get("goodbye:message_invalid", 0) > 0
    assert "timeout" not in outcomes
    assert report["server_log"]["tracebacks"] == 0 and report["server_log"]["errors"] == 0


def test_malformed_against_a_running_server(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as server:
        result, report = chaos(
            "malformed", "--messages", "60", "--server", f"127.0.0.1:{server.port}", "--api", server.api,
            "--data-dir", str(server.data),
        )  # fmt: skip
        assert server.proc.poll() is None  # the drill never stops a server it did not start
    assert result.returncode == 0, failed_checks(report)
    assert report["messages"] == 60 and report["untyped_closes"] == 0
    assert "server_log" not in report  # not its log to read
