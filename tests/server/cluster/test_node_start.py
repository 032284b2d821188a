"""A node's start-up releases the sessions it held before (server/app.py, `release_earlier_sessions`),
and a node whose release fails does not start: it logs why and says so in one line."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from server.app import start_up, startup_failure
from server.cluster.node import NodeSetupError
from server.config import ServerConfig

pytestmark = pytest.mark.postgres

SECRETS = b"s" * 32

# What a failing write looks like from the database's side: every DELETE on live_sessions refused.
_REFUSE_RELEASE = """
CREATE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'live_sessions refused by the test'; END $$;
CREATE TRIGGER refuse_release BEFORE DELETE ON live_sessions FOR EACH STATEMENT EXECUTE FUNCTION refuse_release();
"""


def _config(tmp_path: Path, database: str) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "n1", device_port=0, api_port=0, database_url=database, node_id="n1",
                        secrets_key=SECRETS)  # fmt: skip


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == event]


def test_a_clean_start_logs_how_many_earlier_sessions_it_released(
    tmp_path: Path, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    start_up(_config(tmp_path, pg_dsn)).ctx.store.sync.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # n1 died holding a device
        conn.execute("INSERT INTO devices (device_id, public_key, created_at, online) VALUES ('d1', '\\x00', 0, 1)")
        conn.execute(
            "INSERT INTO live_sessions (device_id, node_id, counter, privileges, since) VALUES ('d1', 'n1', 1, 0, 0)"
        )
    caplog.set_level(logging.INFO, logger="fleetgate.app")
    caplog.clear()  # the first start's lines
    start_up(_config(tmp_path, pg_dsn)).ctx.store.sync.close()
    (released,) = _events(caplog, "node_sessions_released")
    assert released.fields == {"node_id": "n1", "released": 1}  # type: ignore[attr-defined]
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT online FROM devices WHERE device_id = 'd1'").fetchone() == (0,)


def test_a_node_whose_release_fails_does_not_start(
    tmp_path: Path, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    start_up(_config(tmp_path, pg_dsn)).ctx.store.sync.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(_REFUSE_RELEASE)
    caplog.set_level(logging.INFO, logger="fleetgate.app")
    caplog.clear()  # the first start's lines
    with pytest.raises(NodeSetupError) as raised:
        start_up(_config(tmp_path, pg_dsn))
    line = startup_failure(raised.value)  # what `fleetgate serve` prints, alone
    assert line is not None and "\n" not in line
    assert line.startswith("cannot release the sessions node n1 held before: live_sessions refused by the test")
    (failed,) = _events(caplog, "node_start_failed")
    assert failed.levelno == logging.ERROR
    assert failed.fields["node_id"] == "n1"  # type: ignore[attr-defined]
    assert "live_sessions refused by the test" in failed.fields["error"]  # type: ignore[attr-defined]
    assert not _events(caplog, "node_sessions_released")
