"""What the PostgreSQL store adds to the shared store tests: several stores (nodes) on one
database. Batches of all of them apply one at a time, so event IDs follow commit order; notices
go out with their transaction's commit only; nodes starting together migrate and create the first
admin once; and no read blocks the event loop on a network round trip."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trio

from server.events.log import AppendEvent
from server.ops.auth import bootstrap_admin, hash_token
from server.rules.errors import Invalid
from server.store import AsyncStore, SQLiteStore, Transaction
from server.store.postgres import PostgresStore
from server.store.postgres.migrations import MIGRATIONS
from server.store.records import EventRecord, UserRecord
from server.store.secrets_key import SecretsKey
from server.store.tx import StoreTx

pytestmark = pytest.mark.postgres

DEVICE = "ab" * 12


def event(name: str) -> AppendEvent:
    return AppendEvent(EventRecord(DEVICE, name, b"x", 60, True, 1.0))


@pytest.fixture
def nodes(pg_dsn: str, tmp_path: Path) -> Iterator[list[PostgresStore]]:
    """Two stores on one database, as two nodes hold them (one secrets key: a cluster shares it)."""
    key = SecretsKey.default_file(tmp_path / "secrets.key")
    stores = [PostgresStore(pg_dsn, key), PostgresStore(pg_dsn, key)]
    yield stores
    for store in stores:
        store.close()


def test_a_batch_waits_for_another_nodes_batch_so_event_ids_follow_commit_order(nodes: list[PostgresStore]) -> None:
    first, second = nodes
    inside, release = threading.Event(), threading.Event()

    def hold(tx: StoreTx) -> None:
        inside.set()
        assert release.wait(10)

    results: dict[str, list[object]] = {}
    a = threading.Thread(target=lambda: results.setdefault("a", first.write_batch([event("a"), Transaction(hold)])))
    a.start()
    assert inside.wait(10)  # the first node's batch has taken its event IDs and not committed
    b = threading.Thread(target=lambda: results.setdefault("b", second.write_batch([event("b")])))
    b.start()
    time.sleep(0.3)
    assert "b" not in results  # the second node's batch waits for the write lock...
    release.set()
    a.join(10)
    b.join(10)
    (a_id, _), (b_id,) = results["a"], results["b"]
    assert isinstance(a_id, int) and isinstance(b_id, int) and a_id < b_id  # ...so its IDs come after
    assert [(e.id, e.name) for e in second.list_events()] == [(a_id, "a"), (b_id, "b")]


def test_notices_go_out_with_the_commit_and_never_for_what_rolled_back(pg_dsn: str, tmp_path: Path) -> None:
    store = PostgresStore(pg_dsn, SecretsKey.default_file(tmp_path / "secrets.key"))
    listener = psycopg.connect(pg_dsn, autocommit=True)
    try:
        listener.execute("LISTEN fg_test")

        def announce(payload: str, *, fail: bool = False) -> Transaction[None]:
            def fn(tx: StoreTx) -> None:
                tx.notice("fg_test", payload)
                if fail:
                    raise RuntimeError("this op rolls back, and its notice with it")

            return Transaction(fn)

        results = store.write_batch([announce("one"), announce("gone", fail=True), announce("two")])
        assert isinstance(results[1], RuntimeError)
        got = [n.payload for n in listener.notifies(timeout=1.0, stop_after=2)]
        assert got == ["one", "two"]
        with pytest.raises(KeyboardInterrupt):  # a batch that does not commit sends nothing
            store.write_batch([announce("never"), Transaction(_interrupt)])
        assert [n.payload for n in listener.notifies(timeout=0.3)] == []
    finally:
        listener.close()
        store.close()


def _interrupt(tx: StoreTx) -> None:
    raise KeyboardInterrupt


def test_sqlite_says_a_notice_is_for_a_cluster(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fleetgate.db")
    (result,) = store.write_batch([Transaction(lambda tx: tx.notice("fg_test", "x"))])
    assert isinstance(result, NotImplementedError) and "one process" in str(result)
    store.close()


def test_nodes_starting_together_migrate_once_and_create_one_admin(pg_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # a database nothing has migrated yet
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    key = SecretsKey.default_file(tmp_path / "secrets.key")
    key.load(may_create=True)
    both_checked = threading.Barrier(2, timeout=10)

    class Node(PostgresStore):
        """Both nodes find no users before either creates the admin (the race, made certain)."""

        checked = False

        def list_users(self) -> list[UserRecord]:
            users = super().list_users()
            if not self.checked:
                self.checked = True
                both_checked.wait()
            return users

    stores: list[PostgresStore] = []
    made: dict[int, Path | None] = {}
    errors: list[BaseException] = []

    def start(n: int) -> None:
        try:
            store = Node(pg_dsn, key)
            stores.append(store)
            made[n] = bootstrap_admin(store, tmp_path / f"node{n}" / "admin.token")
        except BaseException as exc:
            errors.append(exc)

    (tmp_path / "node0").mkdir()
    (tmp_path / "node1").mkdir()
    threads = [threading.Thread(target=start, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    try:
        assert errors == []
        assert sorted(made) == [0, 1] and sum(path is not None for path in made.values()) == 1
        (path,) = [p for p in made.values() if p is not None]
        users = stores[0].list_users()
        assert [u.username for u in users] == ["admin"]
        token = stores[0].get_token(hash_token(path.read_text().strip()))
        assert token is not None and token.user_id == users[0].id
        assert stores[0].schema_version == MIGRATIONS[-1][0]
    finally:
        for store in stores:
            store.close()


async def test_reads_on_the_event_loop_go_to_a_thread(pg_dsn: str, tmp_path: Path) -> None:
    store = PostgresStore(pg_dsn, SecretsKey.default_file(tmp_path / "secrets.key"))
    try:
        loop_thread = threading.get_ident()

        def where() -> int:
            return threading.get_ident()

        assert await AsyncStore(store).read_now(where) != loop_thread
        assert await AsyncStore(store).read(store.list_users) == []
        assert store.write_batch_now([event("x")]) is None  # never a commit on the loop either
    finally:
        store.close()
    await trio.lowlevel.checkpoint()


def test_text_with_a_nul_character_is_a_bad_value_not_a_fault(pg_dsn: str, tmp_path: Path) -> None:
    store = PostgresStore(pg_dsn, SecretsKey.default_file(tmp_path / "secrets.key"))
    try:
        store.transact(lambda tx: tx.ensure_device(DEVICE, 1.0))
        with pytest.raises(Invalid, match="NUL"):  # SQLite stores it; PostgreSQL cannot
            store.transact(lambda tx: tx.update_device_fields(DEVICE, {"name": "a\x00b"}))
        with pytest.raises(Invalid, match="NUL"):
            store.get_user_by_name("a\x00b")
        (result, after) = store.write_batch([event("a\x00b"), event("fine")])
        assert isinstance(result, Invalid) and isinstance(after, int)  # that op alone fails
    finally:
        store.close()
