"""The operator CLI is an HTTP client: it must not import the server runtime to start."""

from __future__ import annotations

import json
import subprocess
import sys

# (trio is not in the list: httpcore imports it for its locks when it is installed)
SERVER_RUNTIME = [
    "fastapi",
    "hypercorn",
    "starlette",
    "server.app",
    "server.cluster",
    "server.commands",
    "server.context",
    "server.events",
    "server.link",
    "server.ops",
    "server.store",
]

# A fresh interpreter builds the parser and runs a client command against a closed port.
PROBE = """
import contextlib, io, json, sys
from server import cli
cli.build_parser()
with contextlib.redirect_stderr(io.StringIO()):
    code = cli.main(["product", "list", "--api", "http://127.0.0.1:9", "--token", "x"])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_client_commands_leave_the_server_runtime_unimported() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert probe["code"] == 2  # nothing listens on port 9: one line, exit 2
    loaded = [m for m in probe["modules"] if any(m == r or m.startswith(r + ".") for r in SERVER_RUNTIME)]
    assert loaded == []
