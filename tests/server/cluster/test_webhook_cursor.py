"""The webhook cursor (cluster mode): a new leader's webhook dispatch triggers what the previous
leader had not queued (the events after the stored cursor, up to where its live tap starts), once,
and stores how far it has queued. Here on SQLite with a TailFeed, which is what cluster mode runs."""

from __future__ import annotations

from pathlib import Path

import trio

from protocol.noise import KeyPair
from server.config import ServerConfig
from server.context import ServerContext
from server.events.broker import EventBroker
from server.events.publishing import TailFeed
from server.link.registry import SessionRegistry
from server.ops.operations import Operations
from server.rules.model import Policy
from server.rules.webhook_model import WebhookSpec
from server.store import AsyncStore, SQLiteStore, Transaction
from server.store.records import EventRecord

ADMIN = "user:admin"
P = 4501


async def test_a_new_leader_triggers_the_events_after_the_cursor_once_and_moves_it(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    store = AsyncStore(SQLiteStore(tmp_path / "fleetgate.db"), inline=True)
    broker = EventBroker()
    ctx = ServerContext(
        ServerConfig(data_dir=tmp_path), KeyPair.generate(), store, SessionRegistry(), events=broker,
        event_feed=TailFeed(store, broker, ring_others=False, poll=0.05),
    )  # fmt: skip
    await nursery.start(store.run_writer)
    ops = Operations(ctx)
    await ops.create_product(ADMIN, "Meter", product_id=P, policy=Policy.QUARANTINE)
    hook = await ops.webhooks.create(ADMIN, P, WebhookSpec(event="temp", url="https://example.invalid/in"))
    ids = [
        await ctx.event_log.append_and_wait(EventRecord("aa" * 12, "temp", b"1", 60, True, 1.0, P, webhooks=True))
        for _ in range(5)
    ]
    # The previous leader queued up to the second event before it died.
    await store.write(Transaction(lambda tx: tx.set_webhook_cursor(ids[1]), "cursor"))

    await nursery.start(ctx.feed.run)  # the tail starts after the five: they never come live
    await nursery.start(ctx.webhooks.run, ctx)
    with trio.fail_after(5):
        while store.sync.webhook_cursor() == ids[1]:  # noqa: ASYNC110 (the cursor is in the store)
            await trio.sleep(0.02)
    assert ctx.webhooks.stats_of(hook.id).triggered == 3  # the three after the cursor, once each
    assert (store.sync.webhook_cursor() or 0) >= ids[-1]  # (the refusals' hook-error events may follow)

    live = await ctx.event_log.append_and_wait(EventRecord("aa" * 12, "temp", b"2", 60, True, 2.0, P, webhooks=True))
    with trio.fail_after(5):
        while (store.sync.webhook_cursor() or 0) < live:  # noqa: ASYNC110 (the cursor is in the store)
            await trio.sleep(0.02)
    assert ctx.webhooks.stats_of(hook.id).triggered == 4  # a live one, through the tail
