"""A rollout as a new user runs one: `fleetgate serve`, `fleetsim run` devices on version 1 and a
`fleetgate rollout` to version 2 that completes, every device reconnected running version 2."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_sim import firmware

from .cli_support import FLEETSIM, Served, run

P = 4611
DEVICES = 8
HOLD = 15  # seconds the devices stay: the rollout takes a few, more on a loaded machine


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def wait_for(what: str, check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {seconds:g} s"
        time.sleep(0.2)


def test_a_rollout_to_fleetsim_devices_completes(tmp_path: Path, served: Served) -> None:
    ids = tmp_path / "ids"
    ok(run(FLEETSIM, "keygen", "--count", DEVICES, "--out", ids))
    ok(served.cli("device", "import", ids / "devices.csv"))
    ok(served.cli("product", "create", "Lamp", "--id", P))
    ok(served.cli("product", "import", P, ids / "devices.csv"))
    for version in (1, 2):
        binary = tmp_path / f"lamp-{version}.bin"
        binary.write_bytes(firmware.build(P, version, 60_000, seed=version))
        ok(served.cli("firmware", "upload", P, binary))

    fleet = subprocess.Popen(
        [*FLEETSIM, "run", "--server", f"127.0.0.1:{served.port}", "--server-key", str(served.data / "server.pub"),
         "--identities", str(ids), "--product", str(P), "--firmware-version", "1", "--hold", str(HOLD),
         "--timeout", str(HOLD + 30)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def devices() -> list[dict[str, object]]:
            listed: list[dict[str, object]] = json.loads(ok(served.cli("device", "list", "--json")))
            return listed

        wait_for("devices online", lambda: sum(bool(d["online"]) for d in devices()) == DEVICES, 10)
        created = json.loads(ok(served.cli("rollout", "create", P, 2, "--default", "--json")))
        assert created["counts"]["pending"] == DEVICES

        def rollout() -> dict[str, Any]:
            shown: dict[str, Any] = json.loads(ok(served.cli("rollout", "show", P, created["id"], "--json")))["rollout"]
            return shown

        wait_for("finished rollout", lambda: rollout()["state"] != "running", 15)
        done = rollout()
        assert done["state"] == "completed", done
        assert done["counts"]["confirmed"] == DEVICES, done["counts"]
        assert {d["firmware_version"] for d in devices()} == {2}
        out, err = fleet.communicate(timeout=HOLD + 30)
    finally:
        if fleet.poll() is None:
            fleet.kill()
            fleet.communicate()
    assert fleet.returncode == 0, (out, err)
    assert f"updates installed: {DEVICES} (1 -> 2)" in out, out
    assert f"{DEVICES}/{DEVICES} connected, 0 refused, 0 errors" in out, out
