"""Recovery when the admin's only token is revoked: whoever holds the data directory issues a new one."""

from __future__ import annotations

import httpx

from .cli_support import FLEETGATE, Served, run


def test_admin_token_recovers_a_locked_out_admin(served: Served) -> None:
    token = (served.data / "admin.token").read_text().strip()
    revoked = httpx.delete(f"{served.api}/v1/access_tokens/current", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 200
    locked = served.cli("product", "list")
    assert locked.returncode == 2 and "401" in locked.stderr

    recovered = run(FLEETGATE, "admin-token", "--data-dir", served.data)  # beside the running server
    assert recovered.returncode == 0, recovered.stderr
    assert "admin.token" in recovered.stdout and (served.data / "admin.token").stat().st_mode & 0o777 == 0o600
    assert served.cli("product", "list").returncode == 0
    audit = httpx.get(
        f"{served.api}/v1/user",
        headers={"Authorization": f"Bearer {(served.data / 'admin.token').read_text().strip()}"},
    )
    assert audit.status_code == 200 and audit.json()["username"] == "admin"


def test_admin_token_needs_a_data_directory() -> None:
    missing = run(FLEETGATE, "admin-token", "--data-dir", "/nonexistent/fleetgate-data")
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
