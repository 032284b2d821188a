"""Webhook secrets and passwords at rest: sealed in the database under a key kept outside it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from server.rules.webhook_model import Auth, WebhookSpec
from server.store import SQLiteStore
from server.store.secrets_key import SecretsKey, SecretsKeyError
from server.store.sqlite.migrations import MIGRATIONS

from .plain_database import DELETED_SECRET, make_plain_database, on_disk

P = 4901
SECRET = "5e" * 32
PASSWORD = "pa55-w0rd-only-the-receiver-knows"
SPEC = WebhookSpec("temp", "https://example.com/in", auth=Auth("meter", PASSWORD))


def store_with_webhook(data: Path) -> tuple[SQLiteStore, int]:
    data.mkdir(exist_ok=True)
    store = SQLiteStore(data / "fleetgate.db")
    store._w.execute("INSERT INTO products (id, slug, name, created_at) VALUES (?, 'meter', 'Meter', 0)", (P,))
    store._w.execute("BEGIN IMMEDIATE")
    webhook_id = store.insert_webhook(P, SPEC, SECRET, 0.0, "user:admin")
    store._w.execute("COMMIT")
    return store, webhook_id


def test_the_secret_and_password_are_not_in_the_database_files(tmp_path: Path) -> None:
    store, webhook_id = store_with_webhook(tmp_path)
    try:
        stored = on_disk(store.path)
        assert SECRET.encode() not in stored and PASSWORD.encode() not in stored
        [hook] = store.list_webhooks(P)  # the store opens them: nothing above it sees ciphertext
        assert (hook.id, hook.secret, hook.spec) == (webhook_id, SECRET, SPEC)
    finally:
        store.close()


def test_the_default_key_is_made_once_beside_the_database_0600(tmp_path: Path) -> None:
    store, _ = store_with_webhook(tmp_path)
    store.close()
    key_file = tmp_path / "secrets.key"
    text = key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(text.strip())) == 32
    again = SQLiteStore(tmp_path / "fleetgate.db")
    assert again.list_webhooks(P)[0].secret == SECRET
    again.close()
    assert key_file.read_text() == text


def test_a_copy_without_its_key_reveals_nothing_and_does_not_open(tmp_path: Path) -> None:
    store, _ = store_with_webhook(tmp_path / "a")
    store.close()
    copy = tmp_path / "b" / "fleetgate.db"
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "a" / "fleetgate.db").read_bytes())
    assert SECRET.encode() not in copy.read_bytes() and PASSWORD.encode() not in copy.read_bytes()
    with pytest.raises(SecretsKeyError, match=r"secrets\.key is missing but the database holds secrets sealed"):
        SQLiteStore(copy)
    assert not (tmp_path / "b" / "secrets.key").exists()  # no second key is made for sealed data
    with pytest.raises(SecretsKeyError, match=r"is not the one .* was sealed with"):
        SQLiteStore(copy, SecretsKey(key=os.urandom(32)))
    (tmp_path / "b" / "secrets.key").write_text(os.urandom(32).hex())
    with pytest.raises(SecretsKeyError, match="is not the one"):
        SQLiteStore(copy)
    with pytest.raises(SecretsKeyError, match="does not exist"):
        SQLiteStore(copy, SecretsKey(path=tmp_path / "nowhere.key"))
    right = SQLiteStore(copy, SecretsKey(path=tmp_path / "a" / "secrets.key"))
    assert right.list_webhooks(P)[0].spec.auth == Auth("meter", PASSWORD)
    right.close()


def test_a_sealed_value_moved_to_another_row_stops_the_start(tmp_path: Path) -> None:
    store, first = store_with_webhook(tmp_path)
    store._w.execute("BEGIN IMMEDIATE")
    second = store.insert_webhook(P, SPEC, "00" * 32, 0.0, "user:admin")
    store._w.execute("COMMIT")
    store._w.execute("UPDATE webhooks SET secret = (SELECT secret FROM webhooks WHERE id = ?) WHERE id = ?",
                     (first, second))  # fmt: skip
    store.close()
    with pytest.raises(SecretsKeyError, match=f"webhooks/{second}/secret: does not open"):
        SQLiteStore(tmp_path / "fleetgate.db")


def test_a_plain_text_database_is_sealed_in_place_once(tmp_path: Path) -> None:
    db = tmp_path / "fleetgate.db"
    other = WebhookSpec("other", "https://example.org/x")
    [with_auth, without] = make_plain_database(db, P, [(SPEC, SECRET), (other, "ab" * 32)])
    assert all(plain.encode() in on_disk(db) for plain in (SECRET, PASSWORD, DELETED_SECRET))
    store = SQLiteStore(db)
    assert store.schema_version == max(v for v, _ in MIGRATIONS)
    hooks = {h.id: h for h in store.list_webhooks(P)}
    assert (hooks[with_auth].secret, hooks[with_auth].spec) == (SECRET, SPEC)
    assert (hooks[without].secret, hooks[without].spec) == ("ab" * 32, other)
    stored = on_disk(db)
    for plain in (SECRET, PASSWORD, "ab" * 32, DELETED_SECRET):
        assert plain.encode() not in stored, plain  # also not in freed space or the WAL
    sealed = store._w.execute("SELECT spec, secret FROM webhooks ORDER BY id").fetchall()
    store.close()
    again = SQLiteStore(db)  # idempotent: nothing sealed twice
    assert again._w.execute("SELECT spec, secret FROM webhooks ORDER BY id").fetchall() == sealed
    assert again.list_webhooks(P)[0].secret == SECRET
    again.close()


def test_a_password_that_looks_sealed_is_sealed_like_any_other(tmp_path: Path) -> None:
    db = tmp_path / "fleetgate.db"
    odd = WebhookSpec("temp", "https://example.com/in", auth=Auth("u", "fgs1:AAAA"))
    make_plain_database(db, P, [(odd, SECRET)])
    store = SQLiteStore(db)
    assert store.list_webhooks(P)[0].spec == odd
    store.close()


def test_updates_seal_the_new_password(tmp_path: Path) -> None:
    store, webhook_id = store_with_webhook(tmp_path)
    new = WebhookSpec("temp", "https://example.com/in", auth=Auth("meter", "a-new-passw0rd-for-the-receiver"))
    store._w.execute("BEGIN IMMEDIATE")
    store.update_webhook(webhook_id, new)
    store._w.execute("COMMIT")
    assert b"a-new-passw0rd-for-the-receiver" not in on_disk(store.path)
    assert store.list_webhooks(P)[0].spec == new
    store.close()


def test_a_given_key_file_others_can_read_is_used_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key_file = tmp_path / "mounted.key"
    key_file.write_text(os.urandom(32).hex())
    key_file.chmod(0o644)
    (tmp_path / "data").mkdir()
    with caplog.at_level("WARNING", logger="fleetgate.store"):
        SQLiteStore(tmp_path / "data" / "fleetgate.db", SecretsKey(path=key_file)).close()
    assert [r.getMessage() for r in caplog.records] == ["secrets_key_readable_by_others"]
    assert not (tmp_path / "data" / "secrets.key").exists()  # a given key is never joined by a made one
