"""What the chaos drills count as a bad server log: tracebacks, error lines, HTTP 5xx."""

from __future__ import annotations

import json
from pathlib import Path

from firmware_sim.chaos.health import log_check, scan_log


def line(**fields: object) -> str:
    return json.dumps({"ts": "2026-12-06T18:00:00.000Z", "level": "info", "logger": "fleetgate", **fields})


def test_a_clean_log_passes_and_close_reasons_are_counted(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        "\n".join(
            [
                line(event="device_refused", level="warning", reason="frame_too_large"),
                line(event="device_refused", level="warning", reason="frame_too_large"),
                line(event="device_closed", reason="message_invalid"),
                line(event="http_request", status=404),
            ]
        )
        + "\n"
    )
    found = scan_log(log)
    assert (found.lines, found.tracebacks, found.errors, found.http_5xx) == (4, 0, 0, 0)
    assert found.close_reasons == {"frame_too_large": 2, "message_invalid": 1}
    assert log_check(found).ok


def test_tracebacks_errors_and_5xx_fail_the_check(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        "\n".join(
            [
                line(event="accept_failed", level="error", error="EMFILE"),
                line(event="http_request", status=500),
                line(event="unhandled", exc="Traceback (most recent call last):\n  ..."),
                "Traceback (most recent call last):",
                '  File "x.py", line 1, in <module>',
            ]
        )
        + "\n"
    )
    found = scan_log(log)
    assert (found.tracebacks, found.errors, found.http_5xx) == (2, 1, 1)
    check = log_check(found)
    assert not check.ok and "EMFILE" in check.detail


def test_only_the_part_after_the_offset_is_read(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    before = line(event="http_request", status=503) + "\n"
    log.write_text(before + line(event="device_closed", reason="normal") + "\n")
    found = scan_log(log, start=len(before.encode()))
    assert found.http_5xx == 0 and found.lines == 1


def test_a_missing_log_is_empty_not_an_error(tmp_path: Path) -> None:
    assert scan_log(tmp_path / "absent.log").lines == 0
