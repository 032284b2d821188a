"""Round trips of the PostgreSQL writer (issue 17): READY's confirming write is the connect path's
cost on PostgreSQL, and each statement is a round trip to the database. Counted from libpq's own
trace of the writer's connection (one ReadyForQuery per round trip), so the count is PostgreSQL's."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from server.link.writes import ConfirmSession
from server.rules.model import Policy
from server.store import AsyncStore
from server.store.postgres.engine import PostgresStore
from server.store.secrets_key import SecretsKey
from server.store.writeop import Transaction, WriteOp
from tests.pg import empty_database

pytestmark = pytest.mark.postgres

DEVICES = 20
# Per confirmed session at most: its savepoint (with the last op's release), the counter's
# compare-and-set read, the live session's claim (one statement), the publish bucket, the device
# row, the rollout and OTA reads, the admission epoch, the audit row, the live session's
# privileges. The base commit made 12 (a separate release, and the claim as a read and an upsert).
PER_SESSION = 10
PER_BATCH = 1  # the COMMIT; BEGIN and the WRITE lock go with the first op's savepoint


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PostgresStore]:
    opened = PostgresStore(empty_database(), SecretsKey.default_file(tmp_path / "secrets.key"))
    yield opened
    opened.close()


def _fleet(store: PostgresStore) -> tuple[int, list[str]]:
    ids = [f"{n:024x}" for n in range(1, DEVICES + 1)]

    def setup(tx: Any) -> int:
        product = tx.insert_product(None, "bench", "Bench", Policy.PREADD_ONLY, 1.0)
        tx.add_device_keys([(d, bytes(32)) for d in ids], 1.0)
        for d in ids:
            tx.set_membership(d, product.id)
        return int(product.id)

    return store.transact(setup), ids


def _round_trips(store: PostgresStore, ops: list[WriteOp[Any]]) -> tuple[list[object], int]:
    """The batch's results and how many round trips the writer made for it."""
    with tempfile.TemporaryFile("w+") as trace:
        raw = store._w.raw  # the writer's connection, traced by libpq itself
        raw.pgconn.trace(trace.fileno())
        raw.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            results = store.write_batch(ops)
        finally:
            raw.pgconn.untrace()
        trace.seek(0)
        return results, sum(1 for line in trace if "\tReadyForQuery\t" in line)


def _confirm(device_id: str, product_id: int, node_id: str, counter: int = 1) -> ConfirmSession:
    return ConfirmSession(device_id, counter, 3, 6, product_id, 2.0, node_id=node_id)


def test_a_confirmed_session_costs_at_most_ten_round_trips(store: PostgresStore) -> None:
    product_id, ids = _fleet(store)
    # The first uses of each statement cost one round trip more (psycopg prepares it on its fifth
    # use, prepare_threshold): counted on the devices' next connection, as a running server's are.
    store.write_batch([_confirm(d, product_id, "n1") for d in ids])
    results, trips = _round_trips(store, [_confirm(d, product_id, "n1", counter=2) for d in ids])
    assert all(isinstance(r, tuple) and r[0].status.name == "OK" for r in results), results
    assert trips <= PER_BATCH + PER_SESSION * DEVICES, trips / DEVICES
    assert all(store.get_device(d).online for d in ids)  # type: ignore[union-attr]


def test_a_failing_op_between_sessions_rolls_back_alone(store: PostgresStore) -> None:
    """The release held back for the next round trip keeps each op's savepoint its own."""
    product_id, ids = _fleet(store)

    def explode(tx: Any) -> None:
        tx.mark_disconnected(ids[0], 9.0)  # undone with the op
        raise RuntimeError("boom")

    results = store.write_batch(
        [_confirm(ids[0], product_id, "n1"), Transaction(explode), _confirm(ids[1], product_id, "n1")]
    )
    assert isinstance(results[1], RuntimeError)
    assert isinstance(results[0], tuple) and isinstance(results[2], tuple)
    first, second = store.get_device(ids[0]), store.get_device(ids[1])
    assert first is not None and first.online and first.last_heard == 2.0
    assert second is not None and second.online
    with psycopg.connect(store.dsn) as conn:
        held = conn.execute("SELECT device_id, node_id, privileges > 0 FROM live_sessions ORDER BY device_id")
        assert held.fetchall() == [(ids[0], "n1", True), (ids[1], "n1", True)]


def test_claiming_a_session_names_the_node_that_held_it(store: PostgresStore) -> None:
    _, ids = _fleet(store)
    device = ids[0]

    def claim(node: str, counter: int) -> Transaction[str | None]:
        return Transaction(lambda tx: tx.claim_live_session(device, node, counter, 3.0))

    assert store.write_batch([claim("n1", 1)]) == [None]  # nobody held it
    assert store.write_batch([claim("n1", 2)]) == [None]  # this node held it: not another's
    assert store.write_batch([claim("n2", 3), claim("n3", 4)]) == ["n1", "n2"]
    with psycopg.connect(store.dsn) as conn:
        row = conn.execute("SELECT node_id, counter, privileges FROM live_sessions WHERE device_id = %s", (device,))
        assert row.fetchone() == ("n3", 4, 0)


def test_an_empty_batch_begins_nothing(store: PostgresStore) -> None:
    assert _round_trips(store, []) == ([], 0)
    assert store._w.raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert os.environ.get("FLEETGATE_TEST_DATABASE_URL")  # (marked postgres: never run without it)


async def test_a_read_function_checks_out_one_reader_connection(store: PostgresStore) -> None:
    """`AsyncStore.read` runs the whole function on one pooled connection: a checkout from
    psycopg_pool costs about as much CPU as a short statement, and the connect path's OTA read
    makes five statements."""
    _, ids = _fleet(store)
    reads = AsyncStore(store)

    def three_statements() -> int:
        return sum(store.get_device(d) is not None for d in ids[:3])

    before = store._pool.get_stats().get("requests_num", 0)  # type: ignore[union-attr]
    assert await reads.read(three_statements) == 3
    assert store._pool.get_stats().get("requests_num", 0) - before == 1  # type: ignore[union-attr]
    assert await reads.read(lambda: reads.sync.reading(three_statements)) == 3  # nested: the same one
    assert store._pool.get_stats().get("requests_num", 0) - before == 2  # type: ignore[union-attr]


def test_the_firmware_target_facts_are_one_round_trip(store: PostgresStore) -> None:
    """Read for every connection that may be offered firmware (the OTA offer); their values are
    tests/server/store/test_firmware_store.py's, on both stores."""
    product_id, ids = _fleet(store)

    def traced() -> int:
        conn = store._r._local.conn  # the connection this read holds
        with tempfile.TemporaryFile("w+") as trace:
            conn.pgconn.trace(trace.fileno())
            try:
                facts = store.firmware_target_facts(product_id, ids[0])
            finally:
                conn.pgconn.untrace()
            assert facts.locked_version is None and facts.product_default is None and facts.groups == ()
            trace.seek(0)
            return sum(1 for line in trace if "\tReadyForQuery\t" in line)

    assert store.reading(traced) == 1
