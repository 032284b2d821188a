"""Stored events become stored deliveries: the dispatcher's one write, cursor and rows together.

The cursor is the last event ID already turned into deliveries. One transaction reads the events
after it that may trigger webhooks, makes a pending delivery per (webhook, event) the webhooks in
force at that moment match, and moves the cursor past them: a crash before the commit leaves both
as they were, one after it leaves both done, so no delivery is skipped or made twice.
"""

from __future__ import annotations

from ..rules.webhook_model import HOOK_PREFIX, Webhook
from ..store.records import EventRecord
from ..store.tx import StoreTx
from ..store.webhook_records import Dispatched

BATCH = 256  # events read per transaction: bounded memory however far behind the cursor is


def triggers_webhooks(event: EventRecord) -> bool:
    """Only a publisher holding the webhooks privilege triggers them, only in a product's stream, and
    never the cloud's own hook events (a response that triggered a webhook could loop forever)."""
    return (
        event.webhooks
        and event.product_id is not None
        and event.to_device is None
        and not event.name.startswith(HOOK_PREFIX)
    )


def dispatch(tx: StoreTx, at: float, batch: int = BATCH) -> Dispatched:
    cursor = tx.webhook_cursor()
    events = tx.events_for_webhooks(cursor, tx.products_with_webhooks(), batch)
    more = len(events) == batch
    # Fewer than a batch: every event stored so far is seen (the writer holds the write lock, so none
    # below the last ID is still to commit), and the cursor moves to the tail, past events of products
    # without webhooks; a full batch moves it to its last event only.
    last = events[-1].id if more else tx.last_event_id()
    assert last is not None
    if last <= cursor:
        return Dispatched(0, frozenset(), more=False)
    hooks: dict[int, list[Webhook]] = {}
    rows: list[tuple[int, int]] = []
    for event in events:
        if event.product_id is None or event.id is None or not triggers_webhooks(event):
            continue
        if event.product_id not in hooks:
            hooks[event.product_id] = tx.list_webhooks(event.product_id)
        rows.extend((hook.id, event.id) for hook in hooks[event.product_id] if hook.triggered_by(event.name))
    made = tx.insert_deliveries(rows, at)
    tx.set_webhook_cursor(last)
    return Dispatched(made, frozenset(webhook_id for webhook_id, _ in rows), more=more)
