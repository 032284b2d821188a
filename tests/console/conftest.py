"""The console's tests: over HTTP against a real server (most of them), and in Debian's Chromium
(test_browser_*.py) against a real `fleetgate serve` subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import api  # noqa: F401 (the API's fixture: a real server in this test's nursery)
from tests.e2e.cli_support import serving, stop

from .browser_support import CHROMIUM_FLAGS, Setup, chromium_or_fail

PRODUCT = 5001


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright on Debian's Chromium by path: never `playwright install` (its CDN is unreachable)."""
    return {**browser_type_launch_args, "executable_path": chromium_or_fail(), "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="module")
def console_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One `fleetgate serve` for a module's browser tests, with a product, a server admin (olivia),
    a viewer (victor) and a supporter (sam)."""
    chromium_or_fail()  # before a server starts for nothing
    data = tmp_path_factory.mktemp("console") / "data"
    with serving(data) as served:
        setup = Setup(served, (data / "admin.token").read_text().strip())
        setup.user("olivia", admin=True)
        setup.product(PRODUCT, "Weather stations")
        for name, role in (("victor", "view_only"), ("sam", "support")):
            setup.user(name)
            setup.call("POST", f"/v1/products/{PRODUCT}/team", json={"username": name, "role": role})
        yield setup
        stop(served)
