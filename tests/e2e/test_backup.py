"""`fleetgate backup` beside a running, publishing server; restore; and the secrets key at start."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
import trio

from firmware_sim.device import DeviceSettings, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import AckResult
from server.store import SQLiteStore
from server.store.secrets_key import ENV_KEY, SecretsKey, SecretsKeyError

from ..api.conftest import Api, start_api
from .cli_support import FLEETGATE, run, serving, start_server

pytestmark = pytest.mark.sqlite_only  # the SQLite file's own bytes and backups

P = 4901
PASSWORD = "only-the-receiver-knows-this-one"


async def publish_until(
    api: Api, identity: DeviceIdentity, stop: trio.Event, sent: list[int], flowing: trio.Event
) -> None:
    server = api.server
    stream = await trio.open_tcp_stream("127.0.0.1", server.device_port)
    async with connect_device(stream, identity, server.ctx.server_key.public, DeviceSettings(product_id=P)) as device:
        while not stop.is_set():
            assert await device.publish("temp/room", b"21.5") is AckResult.ACCEPTED
            sent.append(1)
            if len(sent) >= 50:
                flowing.set()


async def test_backups_taken_while_devices_publish_are_whole_and_hold_no_keys(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    api = await start_api(tmp_path, nursery, publish_rate=10_000.0, publish_burst=10_000, webhook_allow_private=True)
    async with api.http:
        await api.product("Meter", P, policy="auto_approve")
        hook = await api.ok("POST", f"/v1/products/{P}/webhooks", json={
            "event": "none-of-these", "url": "http://127.0.0.1:9/in",
            "auth": {"username": "meter", "password": PASSWORD},
        })  # fmt: skip
        devices = [DeviceIdentity.generate() for _ in range(4)]
        for identity in devices:
            await api.provision(identity)
        stop, flowing, sent = trio.Event(), trio.Event(), list[int]()
        async with trio.open_nursery() as publishers:
            for identity in devices:
                publishers.start_soon(publish_until, api, identity, stop, sent, flowing)
            copies: list[Path] = []
            with trio.fail_after(60):
                await flowing.wait()
                for n in range(3):
                    copy = tmp_path / f"backup-{n}.db"
                    done = await trio.run_process(
                        [*FLEETGATE, "backup", str(copy), "--data-dir", str(api.data_dir)], capture_stdout=True
                    )
                    copies.append(copy)
                    assert b"holds no keys" in done.stdout and b"secrets.key" in done.stdout
                    assert b"server.key" in done.stdout
            stop.set()
        assert len(sent) > 100
    api.server.shutdown()
    with trio.fail_after(10):
        await api.server.stopped.wait()

    last_ids = []
    for copy in copies:
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert not copy.with_name(copy.name + "-wal").exists()  # one self-contained file
        contents = copy.read_bytes()
        assert hook["secret"].encode() not in contents and PASSWORD.encode() not in contents
        conn = sqlite3.connect(copy)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # One snapshot: events are numbered without gaps and each is whole (no batch half in).
        count, first, last = conn.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM events").fetchone()
        conn.close()
        assert (first, count) == (1, last) and last > 0
        last_ids.append(last)
    assert last_ids == sorted(last_ids) and last_ids[0] < last_ids[-1]  # taken while publishing

    # The copy opens only with the data directory's key.
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(copies[-1], restored / "fleetgate.db")
    with pytest.raises(SecretsKeyError, match="missing but the database holds secrets"):
        SQLiteStore(restored / "fleetgate.db")
    store = SQLiteStore(restored / "fleetgate.db", SecretsKey(path=api.data_dir / "secrets.key"))
    [webhook] = store.list_webhooks(P)
    assert webhook.secret == hook["secret"] and webhook.spec.auth is not None
    assert webhook.spec.auth.password == PASSWORD
    store.close()


def test_restore_is_the_backup_and_the_two_keys_in_a_stopped_data_directory(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as served:
        made = served.cli("product", "create", "Meter", "--id", str(P))
        assert made.returncode == 0, made.stderr
        backup = run(FLEETGATE, "backup", tmp_path / "fleetgate.backup", "--data-dir", served.data)
        assert backup.returncode == 0, backup.stderr
        public_key = (served.data / "server.pub").read_text()
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    shutil.copy(tmp_path / "fleetgate.backup", restored / "fleetgate.db")
    for key in ("secrets.key", "server.key"):
        shutil.copy(served.data / key, restored / key)
    again = start_server(restored)
    try:
        assert public_key.strip() in again.banner  # devices that pinned the key still connect
        listed = again.cli("product", "list", "--token", (served.data / "admin.token").read_text().strip())
        assert listed.returncode == 0 and "Meter" in listed.stdout, listed.stderr
    finally:
        again.proc.kill()
        again.proc.communicate(timeout=10)


def test_backup_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    missing = run(FLEETGATE, "backup", tmp_path / "b.db", "--data-dir", tmp_path / "nowhere")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    data = tmp_path / "data"
    data.mkdir()
    SQLiteStore(data / "fleetgate.db").close()
    taken = tmp_path / "taken.db"
    taken.write_text("keep me")
    exists = run(FLEETGATE, "backup", taken, "--data-dir", data)
    assert exists.returncode == 2 and "exists" in exists.stderr and taken.read_text() == "keep me"
    nodir = run(FLEETGATE, "backup", tmp_path / "no" / "such" / "dir.db", "--data-dir", data)
    assert nodir.returncode == 2 and "cannot write" in nodir.stderr
    for result in (missing, exists, nodir):
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "taken.db"]  # nothing half-written left


def test_serve_refuses_a_key_that_is_not_the_databases_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data):
        pass
    wrong = {**os.environ, ENV_KEY: os.urandom(32).hex()}
    refused = subprocess.run(
        [*FLEETGATE, "serve", "--data-dir", str(data), "--device-port", "0", "--api-port", "0"],
        capture_output=True, text=True, timeout=60, env=wrong,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("fleetgate: the secrets key from $FLEETGATE_SECRETS_KEY is not the one")
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    (data / "secrets.key").unlink()
    lost = run(FLEETGATE, "serve", "--data-dir", data, "--device-port", "0", "--api-port", "0")
    assert lost.returncode == 2 and "secrets.key is missing" in lost.stderr and "Traceback" not in lost.stderr
    assert not (data / "secrets.key").exists()
    bad = {**os.environ, ENV_KEY: "not a key"}
    malformed = subprocess.run([*FLEETGATE, "serve", "--data-dir", str(data)], capture_output=True, text=True,
                               timeout=60, env=bad)  # fmt: skip
    assert malformed.returncode == 2 and "not a 32-byte key" in malformed.stderr
