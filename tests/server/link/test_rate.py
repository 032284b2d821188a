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
