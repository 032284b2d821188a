"""A fresh PostgreSQL database per test (tests/cluster_pg.py says when these tests skip or fail)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster_pg import fresh_database


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with fresh_database() as url:
        yield url
