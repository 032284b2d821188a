"""Table cells of the operator CLI: nested values read as text, not Python reprs."""

from __future__ import annotations

import pytest

from server.cli.operator import _cell


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (True, "yes"),
        ([], "-"),
        (["beta", "gamma"], "beta,gamma"),
        ({"approved": 3, "quarantined": 1}, "approved=3,quarantined=1"),
        ({}, "-"),
        ({"online": False}, "online=no"),
    ],
)
def test_cells(value: object, text: str) -> None:
    assert _cell(value) == text
