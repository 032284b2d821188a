"""particle-api-js 12, unchanged, against a fresh server: every call docs/API.md claims works."""

from __future__ import annotations

import json
from pathlib import Path

from firmware_sim import firmware
from firmware_sim.identity import DeviceIdentity
from tests.e2e.cli_support import Served

from .support import HERE, require_package, run_node

PRODUCT = 4301


def test_every_claimed_call_passes(served: Served, tmp_path: Path) -> None:
    require_package("particle-api-js")
    binaries = []
    for version in (1, 2):
        path = tmp_path / f"lamp-{version}.bin"
        path.write_bytes(firmware.build(PRODUCT, version, 4096, seed=version))
        binaries.append(str(path))
    devices = ",".join(DeviceIdentity.generate().device_id_hex for _ in range(3))
    admin = (served.data / "admin.token").read_text().strip()
    result = run_node(HERE / "api_js_calls.js", served.api, admin, *binaries, str(PRODUCT), devices, timeout=90)
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    failed = [f"{c['call']}: {c['error']}" for c in calls if not c["ok"]]
    assert not failed, f"{len(failed)} of {len(calls)} calls failed:\n" + "\n".join(failed)
    assert len(calls) >= 50, result.stdout
