"""`fleetgate webhook` as a user runs it: a real server process, a simulated device publishing,
and a local HTTP receiver that fails once and then answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .cli_support import FLEETSIM, Served, run, serving

P = 4902


class Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]] = []
    statuses: list[int] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        status = self.statuses.pop(0) if self.statuses else 200
        reply = b'{"answer": 42}' if status == 200 else b"try later"
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    Recorder.received, Recorder.statuses = [], [500]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def served_open(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path / "data", "--webhook-allow-private", "--webhook-retry-delays", "0.2,0.4") as server:
        yield server


def ok(result: object) -> str:
    assert getattr(result, "returncode", 1) == 0, (getattr(result, "stdout", ""), getattr(result, "stderr", ""))
    return str(getattr(result, "stdout", ""))


def test_webhook_commands_deliver_sign_retry_and_answer(
    tmp_path: Path, served_open: Served, receiver: ThreadingHTTPServer
) -> None:
    served = served_open
    ids = tmp_path / "ids"
    ok(run(FLEETSIM, "keygen", "--count", 1, "--out", ids))
    device = (ids / "devices.csv").read_text().splitlines()[-1].split(",")[0]
    ok(served.cli("device", "import", ids / "devices.csv"))
    ok(served.cli("product", "create", "Meter", "--id", P))
    ok(served.cli("product", "add-device", P, device))
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    template = '{"v": "{{{PARTICLE_EVENT_VALUE}}}", "d": "{{PARTICLE_DEVICE_ID}}"}'
    created = json.loads(ok(served.cli(
        "webhook", "create", P, "sim/", url, "--json-body", template, "--header", "X-Team: meters", "--no-defaults",
        "--json",
    )))  # fmt: skip
    secret = created["secret"]
    listed = ok(served.cli("webhook", "list", P))
    assert "sim/" in listed and url in listed

    report = served.fleet(ids, "--product", P, "--publish", 1)
    assert report["summary"]["events_acked"] == 1, report
    # The receiver said 500 first: the same signed request comes again, then succeeds.
    lines = ok(served.cli("events", "tail", P, "--after", 0, "--count", 1, "--prefix", "hook-response/", "--json"))
    (answer,) = [json.loads(line) for line in lines.splitlines()]
    assert answer["event"] == "hook-response/sim/event-0/0" and answer["data"] == '{"answer": 42}'
    assert answer["coreid"] == "particle-internal"
    assert len(Recorder.received) == 2
    (path, headers, body), (_, again, body2) = Recorder.received
    assert path == "/hook" and body == body2 and headers["x-team"] == "meters"
    assert json.loads(body) == {"v": json.loads(body)["v"], "d": device}
    t, v1 = (part.split("=", 1)[1] for part in headers["x-fleetgate-signature"].split(","))
    message = f"{t}.{headers['idempotency-key']}.".encode() + body
    assert hmac.new(bytes.fromhex(secret), message, hashlib.sha256).hexdigest() == v1
    assert headers["idempotency-key"] == again["idempotency-key"]

    history = json.loads(ok(served.cli("webhook", "deliveries", P, created["id"], "--json")))
    assert history["counters"]["succeeded"] == 1 and history["counters"]["retried"] == 1
    assert [e["status"] for e in history["errors"]] == [500]
    text = ok(served.cli("webhook", "deliveries", P, created["id"]))
    assert "latest errors" in text and "500" in text
    assert "disabled" in ok(served.cli("webhook", "disable", P, created["id"]))
    assert json.loads(ok(served.cli("webhook", "show", P, created["id"], "--json")))["config"]["disabled"] is True
    assert "deleted" in ok(served.cli("webhook", "delete", P, created["id"]))


def test_webhook_create_errors_name_the_problem(served: Served) -> None:
    ok(served.cli("product", "create", "Meter", "--id", P))
    bad = served.cli("webhook", "create", P, "temp", "https://example.com/", "--body", "{{#open}}")
    assert bad.returncode == 2 and "body" in bad.stderr and "Traceback" not in bad.stderr
    loopback = served.cli("webhook", "create", P, "temp", "http://127.0.0.1:9/")
    assert loopback.returncode == 2 and "--webhook-allow-private" in loopback.stderr
    scheme = served.cli("webhook", "create", P, "temp", "ftp://example.com/")
    assert scheme.returncode == 2 and "http:// or https://" in scheme.stderr
