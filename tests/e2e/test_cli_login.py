"""`fleetgate login` / `logout`: a per-user profile (never the real home: XDG_CONFIG_HOME and HOME
point into tmp_path) that later commands use when no --token or $FLEETGATE_TOKEN is given."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .cli_support import FLEETGATE, Served


def fleetgate(
    cwd: Path, env: dict[str, str], *args: str | Path | int, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLEETGATE, *map(str, args)], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETGATE_") and k != "XDG_CONFIG_HOME"}
    return {**env, "HOME": str(home), **extra}


def test_login_with_the_admin_token_then_commands_need_no_flags(tmp_path: Path, served: Served) -> None:
    config, elsewhere = tmp_path / "config", tmp_path / "elsewhere"  # no ./fleetgate-data there
    elsewhere.mkdir()
    env = clean_env(tmp_path / "home", XDG_CONFIG_HOME=str(config))
    before = fleetgate(elsewhere, env, "product", "list", "--api", served.api)
    assert before.returncode == 2 and "fleetgate login" in before.stderr

    logged = fleetgate(elsewhere, env, "login", "--api", served.api, "--data-dir", served.data)
    assert logged.returncode == 0 and "as admin" in logged.stdout, logged.stderr
    profile = config / "fleetgate" / "profile.json"
    assert profile.stat().st_mode & 0o777 == 0o600 and profile.parent.stat().st_mode & 0o777 == 0o700
    stored = json.loads(profile.read_text())
    assert stored["api"] == served.api and stored["token"] == (served.data / "admin.token").read_text().strip()

    assert fleetgate(elsewhere, env, "product", "create", "Lamp", "--id", 4201).returncode == 0  # no --api, --token
    assert "Lamp" in fleetgate(elsewhere, env, "product", "list").stdout
    wrong = fleetgate(elsewhere, env, "product", "list", "--token", "not-a-token")  # a given token still wins
    assert wrong.returncode == 2 and "401" in wrong.stderr

    out = fleetgate(elsewhere, env, "logout")
    assert out.returncode == 0 and "logged out" in out.stdout and not profile.exists()
    assert fleetgate(elsewhere, env, "product", "list").returncode == 2
    assert "not logged in" in fleetgate(elsewhere, env, "logout").stdout


def test_login_with_a_password_asks_the_api_and_logout_revokes(tmp_path: Path, served: Served) -> None:
    created = served.cli("user", "create", "alice", "--password", "correct-horse-battery", "--admin")
    assert created.returncode == 0, created.stderr
    home = tmp_path / "home"
    env = clean_env(home)  # no XDG_CONFIG_HOME: ~/.config
    bad = fleetgate(tmp_path, env, "login", "--api", served.api, "--username", "alice", "--password", "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("fleetgate: ") and "Traceback" not in bad.stderr
    profile = home / ".config" / "fleetgate" / "profile.json"
    assert not profile.exists()

    logged = fleetgate(
        tmp_path,
        env,
        "login",
        "--api",
        served.api,
        "--username",
        "alice",
        "--password-stdin",
        stdin="correct-horse-battery\n",
    )
    assert logged.returncode == 0 and "as alice" in logged.stdout, logged.stderr
    first = json.loads(profile.read_text())["token"]
    again = fleetgate(tmp_path, env, "login", "--api", served.api, "--username", "alice", "--password-stdin",
                      stdin="correct-horse-battery\n")  # fmt: skip
    assert again.returncode == 0, again.stderr
    replaced = fleetgate(tmp_path, env, "product", "list", "--api", served.api, "--token", first)
    assert replaced.returncode == 2 and "401" in replaced.stderr  # a replaced login's token is revoked
    token = json.loads(profile.read_text())["token"]
    assert fleetgate(tmp_path, env, "product", "list").returncode == 0

    assert fleetgate(tmp_path, env, "logout").returncode == 0 and not profile.exists()
    revoked = fleetgate(tmp_path, env, "product", "list", "--api", served.api, "--token", token)
    assert revoked.returncode == 2 and "401" in revoked.stderr


def test_logout_removes_a_profile_it_cannot_read(tmp_path: Path) -> None:
    config = tmp_path / "config"
    profile = config / "fleetgate" / "profile.json"
    profile.parent.mkdir(parents=True)
    profile.write_text("{not json")
    env = clean_env(tmp_path / "home", XDG_CONFIG_HOME=str(config))
    out = fleetgate(tmp_path, env, "logout")
    assert out.returncode == 0 and "logged out" in out.stdout, out.stderr
    assert not profile.exists()
