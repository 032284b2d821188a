"""The delivery schedule on trio's MockClock: retries after each delay in turn, the last repeating,
until the retry limit; and the dispatch step that turns stored events into delivery rows."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing

from server.cluster import ControlMessage, LocalBus
from server.config import ServerConfig
from server.events.broker import EventBroker
from server.events.log import EventLog
from server.events.publishing import DirectFeed
from server.rules.model import Policy
from server.rules.webhook_model import WebhookSpec
from server.store import AsyncStore, SQLiteStore, Transaction
from server.store.records import EventRecord
from server.store.tx import StoreTx
from server.webhooks.dispatch import dispatch
from server.webhooks.retry import RetryPolicy
from server.webhooks.service import WebhookService

P = 4903
DEVICE = "ab" * 12
BASE = 1_800_000_000.0  # the service's wall clock is BASE + trio's clock


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Ctx:
    config: ServerConfig
    store: AsyncStore
    events: EventBroker = field(default_factory=EventBroker)
    event_log: EventLog = field(init=False)
    bus: LocalBus = field(default_factory=lambda: LocalBus(_ignore))  # one node: always leads

    def __post_init__(self) -> None:
        self.event_log = EventLog(self.store, DirectFeed(self.events))


async def _ignore(message: ControlMessage) -> None:
    await trio.lowlevel.checkpoint()


def add_webhooks(store: SQLiteStore, *events: str, url: str = "http://127.0.0.1:9/") -> list[int]:
    def fn(tx: StoreTx) -> list[int]:
        if tx.get_product(P) is None:
            tx.insert_product(P, "meter", "Meter", Policy.QUARANTINE, 0.0)
        return [tx.insert_webhook(P, WebhookSpec(event=e, url=url), "00" * 32, 0.0, "test") for e in events]

    return store.transact(fn)


def event(name: str, *, webhooks: bool = True, product_id: int | None = P, to_device: str | None = None) -> EventRecord:
    return EventRecord(DEVICE, name, b"1", 60, True, BASE, product_id=product_id, webhooks=webhooks,
                       to_device=to_device)  # fmt: skip


def test_the_policy_repeats_the_last_delay_within_the_limit() -> None:
    policy = RetryPolicy((30.0, 60.0, 120.0), retry_for=300.0)
    assert [policy.delay_after(n) for n in (1, 2, 3, 4, 9)] == [30.0, 60.0, 120.0, 120.0, 120.0]
    assert policy.next_attempt_at(1, created_at=0.0, now=0.0) == 30.0
    assert policy.next_attempt_at(3, created_at=0.0, now=90.0) == 210.0
    assert policy.next_attempt_at(4, created_at=0.0, now=210.0) is None  # 330 is past 300
    assert RetryPolicy((), 300.0).next_attempt_at(1, 0.0, 0.0) is None


async def test_retries_come_due_on_time_then_the_delivery_fails(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    sync = SQLiteStore(tmp_path / "fleetgate.db")
    store = AsyncStore(sync, inline=True)
    (hook_id,) = add_webhooks(sync, "temp", url=f"http://127.0.0.1:{closed_port()}/")
    config = ServerConfig(data_dir=tmp_path, webhook_retry_delays=(30.0, 60.0, 120.0), webhook_retry_for=300.0,
                          webhook_allow_private=True)  # fmt: skip
    ctx = Ctx(config, store)
    service = WebhookService(clock=lambda: BASE + trio.current_time())
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run_writer)
        await nursery.start(service.run, ctx)
        await ctx.event_log.append_and_wait(event("temp/1"))
        for _ in range(1000):  # simulated seconds
            if sync.webhook_counters([hook_id])[hook_id].failed:
                break
            await trio.sleep(1)
        done_at = trio.current_time()
        await trio.sleep(3600)  # nothing more is tried
        nursery.cancel_scope.cancel()
    attempts = sync.latest_attempts(hook_id, ok=False)
    started = attempts[0].at
    # No receiver: each try fails at once; the next comes after 30, 60, 120, 120 s; a fifth try at
    # 450 s would be past the 300 s limit, so the fourth failure ends it.
    assert [round(a.at - started, 3) for a in attempts] == [0.0, 30.0, 90.0, 210.0]
    assert round(done_at - (started - BASE), 1) <= 211.0
    counters = sync.webhook_counters([hook_id])[hook_id]
    assert (counters.sent, counters.retried, counters.failed, counters.pending) == (4, 3, 1, 0)
    (failed,) = sync.get_deliveries(hook_id, "failed", 10)
    assert failed.attempts == 4 and failed.last_status is None and failed.last_error


def test_dispatch_makes_each_delivery_once_and_moves_the_cursor(tmp_path: Path) -> None:
    sync = SQLiteStore(tmp_path / "fleetgate.db")
    temp, any_event = add_webhooks(sync, "temp", "")
    first = sync.transact(lambda tx: tx.append_events([
        event("temp/1"), event("other"), event("temp/2", webhooks=False), event("hook-response/temp/0"),
        event("temp/3", to_device=DEVICE), event("temp/4", product_id=None),
    ]))  # fmt: skip
    done = sync.transact(lambda tx: dispatch(tx, at=BASE, batch=4))
    assert done.more and done.deliveries == 3 and done.webhook_ids == {temp, any_event}
    assert sync.webhook_cursor() == first[4]  # four flagged events read: temp/1, other, hook-response, temp/3
    done = sync.transact(lambda tx: dispatch(tx, at=BASE, batch=4))
    assert (done.deliveries, done.more) == (0, False) and sync.webhook_cursor() == first[5]
    assert sync.transact(lambda tx: dispatch(tx, at=BASE)).deliveries == 0  # nothing after the cursor
    pending = sync.pending_deliveries([temp, any_event], 10)
    assert sorted((d.delivery.webhook_id, d.event.name if d.event else "") for d in pending) == sorted(
        [(temp, "temp/1"), (any_event, "temp/1"), (any_event, "other")]
    )
    assert sync.webhook_counters([temp])[temp].triggered == 1


def test_a_dispatch_that_rolls_back_leaves_cursor_and_rows_as_they_were(tmp_path: Path) -> None:
    sync = SQLiteStore(tmp_path / "fleetgate.db")
    (hook_id,) = add_webhooks(sync, "temp")
    sync.transact(lambda tx: tx.append_event(event("temp/1")))

    def crash(tx: StoreTx) -> None:
        dispatch(tx, at=BASE)
        raise RuntimeError("killed")

    (result,) = sync.write_batch([Transaction(crash)])
    assert isinstance(result, RuntimeError)
    assert sync.webhook_cursor() == 0 and sync.pending_deliveries([hook_id], 10) == []
    assert sync.transact(lambda tx: dispatch(tx, at=BASE)).deliveries == 1


@pytest.mark.parametrize("state", ["succeeded", "failed"])
def test_finished_deliveries_are_pruned_after_their_retention(tmp_path: Path, state: str) -> None:
    from server.store.webhook_records import DeliveryUpdate

    sync = SQLiteStore(tmp_path / "fleetgate.db")
    (hook_id,) = add_webhooks(sync, "temp")
    sync.transact(lambda tx: tx.append_event(event("temp/1")))
    sync.transact(lambda tx: dispatch(tx, at=BASE))
    (due,) = sync.pending_deliveries([hook_id], 10)
    update = DeliveryUpdate(due.delivery.id, hook_id, state, 1, BASE, 200, "", BASE + 10, None, ())  # type: ignore[arg-type]
    sync.transact(lambda tx: tx.update_delivery(update))
    assert sync.transact(lambda tx: tx.prune_deliveries(BASE + 5, BASE + 5, 100)) == 0  # still kept
    assert sync.transact(lambda tx: tx.prune_deliveries(BASE + 11, BASE + 11, 100)) == 1
    assert sync.get_deliveries(hook_id, state, 10) == []


def test_the_upgrade_starts_the_cursor_after_the_events_already_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events stored before migration 11 were the in-memory service's to send: not sent again."""
    from server.store.sqlite import engine
    from server.store.sqlite.migrations import MIGRATIONS

    monkeypatch.setattr(engine, "MIGRATIONS", [m for m in MIGRATIONS if m[0] != 11])  # a database from before 11
    old = SQLiteStore(tmp_path / "fleetgate.db")
    old._w.executemany(
        "INSERT INTO events (device_id, name, data, ttl, private, published_at, product_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(DEVICE, "temp", b"1", 60, 1, BASE, P)] * 3,
    )
    old.close()
    monkeypatch.setattr(engine, "MIGRATIONS", MIGRATIONS)
    upgraded = SQLiteStore(tmp_path / "fleetgate.db")
    assert upgraded.schema_version >= 11 and upgraded.webhook_cursor() == 3
    assert [e.webhooks for e in upgraded.list_events()] == [False] * 3
