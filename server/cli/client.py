"""The HTTP client behind the operator CLI: one line of reason for every failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ..config import DEFAULT_API_PORT


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def default_api() -> str:
    return os.environ.get("FLEETGATE_API", f"http://127.0.0.1:{DEFAULT_API_PORT}")


def resolve_token(token: str | None, data_dir: Path) -> str:
    """--token, else $FLEETGATE_TOKEN, else the first-run admin token in the data directory."""
    if token:
        return token
    if env := os.environ.get("FLEETGATE_TOKEN"):
        return env
    path = data_dir / "admin.token"
    try:
        return path.read_text().strip()
    except OSError:
        raise CliError(
            f"no token: run `fleetgate login`, pass --token, set FLEETGATE_TOKEN, or point --data-dir at a"
            f" server's data directory ({path} not readable)"
        ) from None


class ApiClient:
    def __init__(self, base_url: str, token: str | None) -> None:
        """No token: for the requests that need none (/oauth/token)."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=30.0)
        self.base_url = base_url

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the API at {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise CliError(f"{method} {path}: {response.status_code} {_reason(response)}")
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def stream_lines(self, path: str, **kwargs: Any) -> Iterator[str]:
        """The lines of a streamed answer (Server-Sent Events), as they arrive; no read timeout."""
        try:
            with self._http.stream("GET", path, timeout=httpx.Timeout(30.0, read=None), **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise CliError(f"GET {path}: {response.status_code} {_reason(response)}")
                yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise CliError(f"the stream from {self.base_url} ended: {exc}") from None

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        message = body.get("error_description") or body.get("error") or body
        field = body.get("field")
        return f"{message} (field: {field})" if field else str(message)
    return str(body)[:200]
