"""PostgreSQL for the cluster tests: a fresh database on the server FLEETGATE_TEST_DATABASE_URL
names. Without it a developer's run skips these tests with that reason; under CI (the CI
variable set) they fail instead, since CI always provides PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

URL_VARIABLE = "FLEETGATE_TEST_DATABASE_URL"


def admin_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        reason = f"{URL_VARIABLE} is not set: no PostgreSQL to run the cluster tests on"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database (dropped afterwards, with whatever still holds it)."""
    admin = admin_url()
    name = f"pgbus_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        parts = urlsplit(admin)
        yield f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
