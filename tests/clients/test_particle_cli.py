"""particle-cli 3, unchanged, pointed at a fresh server through its own config file
(`~/.particle/particle.config.json`: `apiUrl` and `access_token`), runs the commands users
reach for first: list, product device list, webhook list, publish, subscribe."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.cli_support import Served

from .support import node, require_package

P = 4302
DEVICE = "ab0000000000000000000042"
TIMEOUT = 30  # seconds one command may take (node starts in about a second)


class ParticleCli:
    def __init__(self, served: Served, home: Path) -> None:
        self.entry = require_package("particle-cli") / "src" / "index.js"
        token = (served.data / "admin.token").read_text().strip()
        config = home / ".particle"
        config.mkdir(parents=True)
        settings = {"apiUrl": served.api, "access_token": token, "username": "admin"}
        (config / "particle.config.json").write_text(json.dumps(settings))
        self.env = {**os.environ, "HOME": str(home), "PARTICLE_DISABLE_UPDATE": "true", "NO_COLOR": "1"}
        self.token = token

    def argv(self, *args: str | int) -> list[str]:
        return [node(), str(self.entry), *map(str, args)]

    def run(self, *args: str | int) -> str:
        result = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=TIMEOUT, env=self.env)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def start(self, *args: str | int) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env)  # fmt: skip


def _set_up(served: Served, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=served.api, headers=headers, timeout=10) as http:
        for method, path, body in [
            ("POST", "/v1/products", {"name": "Lamp", "id": P}),
            ("POST", f"/v1/products/{P}/devices", {"id": DEVICE}),
            ("PUT", f"/v1/products/{P}/devices/{DEVICE}", {"name": "porch"}),
            ("POST", f"/v1/products/{P}/webhooks", {"event": "temp", "url": "http://127.0.0.1:9/in"}),
        ]:
            response = http.request(method, path, json=body)
            assert response.status_code < 300, (path, response.text)


def test_particle_cli_commands(served: Served, tmp_path: Path) -> None:
    cli = ParticleCli(served, tmp_path / "home")
    _set_up(served, cli.token)

    assert "porch [ab0000000000000000000042]" in cli.run("list")
    assert DEVICE in cli.run("product", "device", "list", P)
    assert "Found 1 hooks registered" in cli.run("webhook", "list")
    assert "Published private event: hello" in cli.run("publish", "hello", "world")

    subscriber = cli.start("subscribe", "greeting", "--max", 1)
    try:
        # The subscriber connects in its own time: publish until it has seen one.
        deadline = time.monotonic() + TIMEOUT
        while subscriber.poll() is None:
            assert time.monotonic() < deadline, "particle subscribe saw no event"
            cli.run("publish", "greeting", "hi there")
            time.sleep(0.5)
        out, err = subscriber.communicate(timeout=TIMEOUT)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.communicate()
    assert subscriber.returncode == 0, (out, err)
    event = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert (event["name"], event["data"], event["coreid"]) == ("greeting", "hi there", "api")
