"""The rows of durable webhook delivery (store/sqlite/webhook_deliveries.py): deliveries, the latest
attempts and the counters. Plain frozen values, as records.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .records import EventRecord

DeliveryState = Literal["pending", "succeeded", "failed"]
COUNTERS = ("triggered", "sent", "succeeded", "retried", "failed", "refused", "dropped")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to send to one webhook, until the receiver answers 2xx or the retries run out."""

    id: int
    webhook_id: int
    event_id: int
    state: DeliveryState
    attempts: int  # requests made so far
    next_at: float  # wall time the next attempt is due (pending only)
    last_status: int | None
    last_error: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class DueDelivery:
    delivery: Delivery
    event: EventRecord | None  # None: the event is no longer stored


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One request made (or refused before it was made)."""

    webhook_id: int
    event_id: int
    at: float  # wall time the request started
    attempt: int  # 1 for the first try
    status: int | None  # the HTTP status, None when no response came
    duration_ms: float
    error: str = ""  # why it failed; empty on success


@dataclass(frozen=True, slots=True)
class DeliveryCounters:
    """Where every triggered delivery went (counted as it happens) and how many are still pending."""

    triggered: int = 0
    sent: int = 0  # requests made (retries included)
    succeeded: int = 0
    retried: int = 0  # retries scheduled
    failed: int = 0  # given up: retries spent, or an answer not worth retrying
    refused: int = 0  # the target was not allowed (private or loopback)
    dropped: int = 0  # never sent: its webhook was disabled, or its event no longer stored
    pending: int = 0  # waiting for their first try or a retry


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """What one attempt changed, written in one transaction: the delivery's new state, the attempt
    for the history (None: no request was made), and the counters to add one to."""

    delivery_id: int
    webhook_id: int
    state: DeliveryState
    attempts: int
    next_at: float
    status: int | None
    error: str
    at: float
    attempt: DeliveryAttempt | None
    counts: tuple[str, ...]  # names from COUNTERS


@dataclass(frozen=True, slots=True)
class Dispatched:
    """What one dispatch step did: the delivery rows made, for which webhooks, and whether more
    events may be waiting after the cursor."""

    deliveries: int
    webhook_ids: frozenset[int]
    more: bool
