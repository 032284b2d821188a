"""The firmware workflow as a user types it: build, keygen, sign, upload, list, release, lock."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from firmware_sim import firmware
from server.cli import main
from server.firmware.signing import parse_signature, verify

from .cli_support import FLEETGATE, FLEETSIM, Served, run, stop

P = 4201


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_build_sign_upload_list_release(tmp_path: Path, served: Served) -> None:
    binary, key = tmp_path / "lamp-3.bin", tmp_path / "signing.pem"
    ok(run(FLEETSIM, "firmware", "build", "--product", P, "--version", 3, "--size", 200_000, "--out", binary))
    assert binary.stat().st_size == 200_000

    # Offline: no server, no token.
    keys = json.loads(ok(run(FLEETGATE, "firmware", "keygen", "--out", key, "--json")))
    assert key.stat().st_mode & 0o777 == 0o600 and len(keys["public_key"]) == 64
    ok(run(FLEETGATE, "firmware", "sign", binary, "--key", key))
    signature = parse_signature((tmp_path / "lamp-3.bin.sig").read_bytes())
    assert verify(binary.read_bytes(), signature, bytes.fromhex(keys["public_key"]))
    assert "signature OK" in ok(run(FLEETGATE, "firmware", "verify", binary, "--public-key", f"{key}.pub"))

    # Online.
    ok(served.cli("product", "create", "Lamp", "--id", P))
    uploaded = json.loads(ok(served.cli("firmware", "upload", P, binary, "--signature", f"{binary}.sig", "--json")))
    assert uploaded["version"] == 3 and uploaded["title"] == "lamp-3" and uploaded["signature"] == signature.hex()
    again = served.cli("firmware", "upload", P, binary)
    assert again.returncode == 2 and "409" in again.stderr and "Traceback" not in again.stderr
    wrong = served.cli("firmware", "upload", P, binary, "--version", 4)
    assert wrong.returncode == 2 and "(field: version)" in wrong.stderr

    ok(served.cli("group", "create", P, "beta"))
    released = json.loads(ok(served.cli("firmware", "release", P, 3, "--default", "--group", "beta", "--json")))
    assert released["product_default"] and released["groups"] == ["beta"]
    listing = json.loads(ok(served.cli("firmware", "list", P, "--json")))
    assert [(f["version"], f["product_default"]) for f in listing] == [(3, True)]
    table = ok(served.cli("firmware", "list", P))
    assert table.splitlines()[0].split()[:3] == ["VERSION", "TITLE", "SIZE"] and "lamp-3" in table
    refused = served.cli("firmware", "delete", P, 3)
    assert refused.returncode == 2 and "409" in refused.stderr

    device = "0123456789abcdef01234567"
    ok(served.cli("product", "add-device", P, device))
    assert "groups beta" in ok(served.cli("device", "groups", P, device, "beta"))
    assert "locked to version 3" in ok(served.cli("device", "lock", P, device, 3))
    assert "unlocked" in ok(served.cli("device", "lock", P, device, "--unlock"))
    actions = [a["action"] for a in json.loads(ok(served.cli("audit", P, "--json")))["audit"]]
    for action in ("firmware_uploaded", "group_created", "firmware_released", "device_groups_set", "firmware_locked"):
        assert action in actions
    stop(served)


def test_offline_commands_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The offline commands' other answers, without paying for a subprocess each."""
    binary, key = tmp_path / "fw.bin", tmp_path / "k.pem"
    binary.write_bytes(firmware.build(P, 3, 5000))
    assert main(["firmware", "keygen", "--out", str(key)]) == 0
    assert main(["firmware", "keygen", "--out", str(key)]) == 2  # never overwritten
    assert main(["firmware", "sign", str(binary), "--key", str(key), "--out", str(tmp_path / "s")]) == 0
    data = bytearray(binary.read_bytes())
    data[1000] ^= 1
    (tmp_path / "tampered.bin").write_bytes(bytes(data))
    verify_args = ["--public-key", f"{key}.pub", "--signature", str(tmp_path / "s")]
    assert main(["firmware", "verify", str(binary), *verify_args]) == 0
    assert main(["firmware", "verify", str(tmp_path / "tampered.bin"), *verify_args]) == 1
    capsys.readouterr()
    assert main(["firmware", "inspect", str(binary), "--json"]) == 0
    header = json.loads(capsys.readouterr().out)
    assert header["product_id"] == P and header["version"] == 3 and header["size"] == 5000
    # A lock needs a version or --unlock; the check comes before any request.
    lock = ["device", "lock", str(P), "0123456789abcdef01234567", "--token", "0" * 40, "--api", "http://127.0.0.1:9"]
    assert main(lock) == 2 and "a firmware version to lock to, or --unlock" in capsys.readouterr().err

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not firmware at all, clearly: " * 4)
    cases = [
        (["firmware", "inspect", str(junk)], "magic"),
        (["firmware", "inspect", str(tmp_path / "fw.bin.missing")], "cannot read"),
        (["firmware", "sign", str(junk), "--key", str(tmp_path / "missing.pem")], "cannot read"),
        (["firmware", "sign", str(junk), "--key", str(binary)], "not an unencrypted PEM"),
        (["firmware", "verify", str(junk), "--public-key", "abcd"], "64 hex"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("fleetgate: ") and message in err and err.count("\n") == 1, (args, err)
