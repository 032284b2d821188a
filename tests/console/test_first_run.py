"""A new user's first run: `fleetgate serve` prints the console's URL and, once, the admin's password."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.cli_support import serving, stop


def test_the_first_run_prints_a_console_login_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data) as first:
        found = re.search(r"log in to the console as admin, password (\S+) \(shown this once", first.banner)
        assert found, first.banner
        assert f"console at {first.api}/console/" in first.banner
        password = found.group(1)
        response = httpx.post(
            first.api + "/console/login",
            data={"username": "admin", "password": password},
            headers={"Origin": first.api},
        )
        assert response.status_code == 303, response.text
        assert "fg_session=" in response.headers["set-cookie"]
        stop(first)
    assert password not in (data / "admin.token").read_text()
    with serving(data) as second:
        assert "password" not in second.banner  # printed on the first run only
        assert "console at" in second.banner
        stop(second)
