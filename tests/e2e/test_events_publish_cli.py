"""`fleetgate events publish` as a user runs it, against a real `fleetgate serve`."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .cli_support import Served, serving

P = 4902


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path / "data", "--webhook-allow-private") as server:
        yield server


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def _triggered(served: Served, hook_id: int) -> int:
    counters = json.loads(ok(served.cli("webhook", "deliveries", P, hook_id, "--json")))["counters"]
    return int(counters["triggered"])


def test_publish_to_a_product_triggers_its_webhooks(served: Served) -> None:
    ok(served.cli("product", "create", "Lamp", "--id", P))
    hook = json.loads(ok(served.cli("webhook", "create", P, "temp", "http://127.0.0.1:9/in", "--json")))
    assert "published temp to product 4902's stream" in ok(
        served.cli("events", "publish", "temp", "21.5", "--product", P)
    )
    (event,) = [
        json.loads(line)
        for line in ok(served.cli("events", "tail", P, "--after", 0, "--count", 1, "--json")).splitlines()
    ]
    assert (event["event"], event["data"], event["coreid"], event["productID"]) == ("temp", "21.5", "api", P)
    assert event["public"] is False
    deadline = time.monotonic() + 10
    while _triggered(served, hook["id"]) < 1:
        assert time.monotonic() < deadline, "the webhook never triggered"
        time.sleep(0.1)


def test_publish_as_a_user_reaches_the_users_own_stream(served: Served) -> None:
    answer = json.loads(ok(served.cli("events", "publish", "door/open", "front", "--public", "--json")))
    assert answer == {"ok": True}
    token = (served.data / "admin.token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{served.api}/v1/devices/events?after=0", headers=headers, timeout=10) as response:
        data = next(line for line in response.iter_lines() if line.startswith("data: "))
    event = json.loads(data.removeprefix("data: "))
    assert (event["data"], event["coreid"], event["public"]) == ("front", "api", True)


def test_bad_input_is_one_line_on_stderr(served: Served) -> None:
    too_long = served.cli("events", "publish", "x", "d" * 1025)
    assert too_long.returncode != 0 and "data" in too_long.stderr
    assert "Traceback" not in too_long.stderr and len(too_long.stderr.strip().splitlines()) == 1
    missing = served.cli("events", "publish", "x", "--product", 9999)
    assert missing.returncode != 0 and "404" in missing.stderr and "Traceback" not in missing.stderr
