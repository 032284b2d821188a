"""The per-device publish limit: a token bucket on the caller's clock."""

from __future__ import annotations

import pytest

from server.link.rate import TokenBucket


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0, 0, 0, 0, 0], [True, True, True, True, False]),  # a burst of four, then slow down
        ([0, 0, 0, 0, 0.5, 1.0], [True, True, True, True, False, True]),  # one token a second
        ([0, 0, 0, 0, 100, 100, 100, 100, 100], [True] * 4 + [True] * 4 + [False]),  # refills to the burst only
    ],
)
def test_token_bucket(times: list[float], expected: list[bool]) -> None:
    bucket = TokenBucket(rate=1.0, burst=4)
    assert [bucket.take(t) for t in times] == expected


def test_a_bucket_handed_over_holds_no_more_than_it_had_left() -> None:
    """Cluster mode: a device moving nodes brings its bucket's level; limiting never adds tokens."""
    bucket = TokenBucket(rate=1.0, burst=4)
    bucket.limit_to(1.0, now=10.0)  # a fresh bucket (4 tokens) takes the 1 left elsewhere
    assert bucket.level(10.0) == 1.0
    assert bucket.take(10.0) and not bucket.take(10.0)
    bucket.limit_to(3.0, now=10.5)  # more than it holds now (0.5): stays at what it holds
    assert bucket.level(10.5) == 0.5
    assert bucket.level(20.0) == 4.0  # refills to the burst, never beyond


def test_a_bucket_counts_what_it_gave_out() -> None:
    """What a session spent before its handed-over bucket arrived is taken off that bucket."""
    bucket = TokenBucket(rate=1.0, burst=4)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not TokenBucket(rate=1.0, burst=0).take(0.0)
    assert bucket.taken == 2
