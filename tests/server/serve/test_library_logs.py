"""A library's warnings are log lines like ours: psycopg_pool's, on stderr, as JSON (or text)."""

from __future__ import annotations

import json
import subprocess
import sys

# A pool that cannot connect (nothing listens on port 1) warns from its worker thread; the
# process exits once the pool has given up opening.
_POOL_WARNING = """
import psycopg_pool
from server.logs import setup_logging
setup_logging("info", {fmt!r})
pool = psycopg_pool.ConnectionPool("postgresql://127.0.0.1:1/nothing", min_size=1, open=False, name="readers",
                                   kwargs={{"connect_timeout": 1}}, reconnect_timeout=0.5)
try:
    pool.open(wait=True, timeout=1.5)
except psycopg_pool.PoolTimeout:
    pass
pool.close()
"""


def _stderr_of(fmt: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _POOL_WARNING.format(fmt=fmt)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stderr.splitlines() if line.strip()]


def test_psycopg_pool_warnings_are_json_log_lines() -> None:
    lines = _stderr_of("json")
    assert lines, "the pool warned nothing: the test no longer provokes a warning"
    records = [json.loads(line) for line in lines]  # every line, none plain text
    assert {r["logger"] for r in records} == {"psycopg.pool"}
    assert all(r["level"] == "warning" for r in records)
    assert any("error connecting in 'readers'" in r["event"] for r in records)
    assert all(r["ts"].endswith("Z") for r in records)


def test_psycopg_pool_warnings_follow_the_text_format_too() -> None:
    lines = _stderr_of("text")
    # A record's first line; psycopg's reasons go on over more lines ("Is the server running ...").
    firsts = [line for line in lines if line[:4].isdigit()]
    assert firsts, lines
    assert all(" warning psycopg.pool " in line for line in firsts), lines
    assert any(" warning psycopg.pool error connecting in 'readers'" in line for line in firsts), lines
    assert not any(line.startswith("error connecting") for line in lines), lines  # the last-resort form
