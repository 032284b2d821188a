"""`fleetgate login` and `logout`: keep an API URL and a token in the per-user profile.

Where the token comes from, first that applies: `--username` (and a password) logs in through
the API's /oauth/token, as Particle's CLI does; `--token` stores the one given; otherwise the
admin token a server's first run wrote to DATA_DIR/admin.token. Either way the token is checked
against the API (GET /v1/user) before it is stored.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .client import ApiClient, CliError, default_api, resolve_token
from .operator import ok
from .profile import Profile, load_profile, profile_path, remove_profile, save_profile


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if args.password is not None:
        return str(args.password)
    raise CliError("give --password or --password-stdin with --username")


def _password_token(api: str, args: argparse.Namespace) -> str:
    client = ApiClient(api, None)
    try:
        form = {"grant_type": "password", "username": args.username, "password": _password(args)}
        issued = client.post("/oauth/token", data=form)
    finally:
        client.close()
    return str(issued["access_token"])


def _revoke(api: str, token: str) -> str | None:
    """Revoke a token this CLI obtained by password; None when done, else why not."""
    client = ApiClient(api, token)
    try:
        client.delete("/v1/access_tokens/current")
    except CliError as exc:
        return str(exc)
    finally:
        client.close()
    return None


def _stored_profile() -> Profile | None:
    try:
        return load_profile() if profile_path().exists() else None
    except CliError:  # an unreadable profile: nothing to revoke, but it must still be replaceable
        return None


def login(args: argparse.Namespace) -> int:
    api = args.api or default_api()
    revocable = args.username is not None
    # Without --username: --token, else $FLEETGATE_TOKEN, else the data directory's admin token.
    token = _password_token(api, args) if revocable else resolve_token(args.token, args.data_dir)
    client = ApiClient(api, token)
    try:
        me = client.get("/v1/user")
    except CliError:
        if revocable:  # a token nobody will hold: do not leave it live
            _revoke(api, token)
        raise
    finally:
        client.close()
    old = _stored_profile()
    path = save_profile(Profile(api=api, token=token, username=str(me["username"]), revocable=revocable))
    if old is not None and old.revocable and old.token != token:  # the replaced login's token goes too
        _revoke(old.api, old.token)
    data = {"api": api, "username": me["username"], "profile": str(path)}
    return ok(args, data, f"logged in to {api} as {me['username']}; the token is in {path} (mode 0600)")


def logout(args: argparse.Namespace) -> int:
    profile = _stored_profile()
    if profile is not None and profile.revocable:  # the token login asked for: revoke it too
        why = _revoke(profile.api, profile.token)
        if why is not None:  # still forget it here; the token expires on its own
            print(f"fleetgate: the token was not revoked ({why})", file=sys.stderr)
    removed = remove_profile()
    text = f"logged out: removed {profile_path()}" if removed else "not logged in: no profile to remove"
    return ok(args, {"removed": removed, "profile": str(profile_path())}, text)


def add_commands(sub: Any, data_dir_arg: Any) -> None:
    p = sub.add_parser("login", help="store an API URL and a token in your profile (see README)")
    p.add_argument("--api", help="API base URL (default $FLEETGATE_API or http://127.0.0.1:8080)")
    p.add_argument("--username", help="log in as this user through the API (with a password)")
    p.add_argument("--password", help="the password (visible in your shell history; prefer --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--token", help="store this token (default, without --username: DATA_DIR/admin.token)")
    data_dir_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(offline=login)
    q = sub.add_parser("logout", help="remove your profile (revoking a token that login asked for)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(offline=logout)
