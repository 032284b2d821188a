"""The per-user profile `fleetgate login` writes: which API to talk to and the token to show it.

$XDG_CONFIG_HOME/fleetgate/profile.json (else ~/.config/fleetgate/profile.json); the directory
is made 0700 and the file 0600, written whole and renamed into place.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .client import CliError, default_api, resolve_token


@dataclass(frozen=True)
class Profile:
    api: str
    token: str
    username: str
    revocable: bool  # a token this login asked for (password grant): logout revokes it


def profile_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fleetgate" / "profile.json"


def load_profile() -> Profile | None:
    path = profile_path()
    try:
        data = json.loads(path.read_text())
        return Profile(str(data["api"]), str(data["token"]), str(data["username"]), bool(data["revocable"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read the profile {path} ({exc}); `fleetgate logout` removes it") from None


def save_profile(profile: Profile) -> Path:
    path = profile_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # it may have been there already, made with the umask
        partial = path.with_name(path.name + ".new")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(profile), f)
            f.write("\n")
        os.replace(partial, path)
    except OSError as exc:
        raise CliError(f"cannot write the profile {path}: {exc.strerror}") from None
    return path


def remove_profile() -> bool:
    """False if there was none."""
    try:
        profile_path().unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CliError(f"cannot remove the profile {profile_path()}: {exc.strerror}") from None
    return True


def resolve_api(given: str | None) -> str:
    """--api, else $FLEETGATE_API, else the profile's, else the local default."""
    if given:
        return given
    if os.environ.get("FLEETGATE_API"):
        return default_api()
    profile = load_profile()
    return profile.api if profile is not None else default_api()


def resolve_credentials(api_given: str | None, token_given: str | None, data_dir: Path) -> tuple[str, str]:
    """The API URL and the token for it: --token, else $FLEETGATE_TOKEN, else the profile's token
    if the API is the profile's (a token belongs to the server that issued it), else the admin
    token in the data directory."""
    api = resolve_api(api_given)
    if not token_given and not os.environ.get("FLEETGATE_TOKEN"):
        profile = load_profile()
        if profile is not None and profile.api.rstrip("/") == api.rstrip("/"):
            return api, profile.token
    return api, resolve_token(token_given, data_dir)
