"""What one attempt makes of a delivery: its next state, the attempt for the history, the counters.
Pure (wall time passed in), so the retry limit is tested as data."""

from __future__ import annotations

from ..store.webhook_records import Delivery, DeliveryAttempt, DeliveryState, DeliveryUpdate
from .retry import RetryPolicy, retryable


def answered(
    delivery: Delivery, status: int | None, error: str, started: float, ended: float, policy: RetryPolicy
) -> DeliveryUpdate:
    """A request was made: 2xx succeeds; a retryable failure waits for its next try while the policy
    allows one; anything else fails, its reason kept."""
    attempts = delivery.attempts + 1
    attempt = DeliveryAttempt(delivery.webhook_id, delivery.event_id, started, attempts, status,
                              round((ended - started) * 1000, 1), error)  # fmt: skip
    if not error:
        return _update(delivery, "succeeded", attempts, status, "", ended, attempt, ("sent", "succeeded"))
    next_at = policy.next_attempt_at(attempts, delivery.created_at, ended) if retryable(status) else None
    if next_at is not None:
        return _update(delivery, "pending", attempts, status, error, ended, attempt, ("sent", "retried"), next_at)
    return _update(delivery, "failed", attempts, status, error, ended, attempt, ("sent", "failed"))


def not_sent(delivery: Delivery, error: str, at: float, *, counter: str, history: bool) -> DeliveryUpdate:
    """No request was made, and none will be: a template that cannot render, a refused target
    (`history`: shown among the errors), a disabled webhook or a vanished event (counted dropped)."""
    attempts = delivery.attempts + (1 if history else 0)
    attempt = DeliveryAttempt(delivery.webhook_id, delivery.event_id, at, attempts, None, 0.0, error)
    counts = ("sent", counter) if history else (counter,)
    return _update(delivery, "failed", attempts, None, error, at, attempt if history else None, counts)


def _update(
    delivery: Delivery,
    state: DeliveryState,
    attempts: int,
    status: int | None,
    error: str,
    at: float,
    attempt: DeliveryAttempt | None,
    counts: tuple[str, ...],
    next_at: float | None = None,
) -> DeliveryUpdate:
    due = delivery.next_at if next_at is None else next_at
    return DeliveryUpdate(delivery.id, delivery.webhook_id, state, attempts, due, status, error, at, attempt, counts)
