"""A real Server (device listener + HTTP API) on kernel-chosen ports, and an HTTP client for it.

Helpers go through the API itself (users, products, tokens), so every test exercises the
same paths an operator's tools do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from firmware_sim.identity import DeviceIdentity
from server.app import Server, start_up
from server.config import ServerConfig

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client(base_url: str) -> httpx.AsyncClient:
    # Plain HTTP on loopback: verify=False only skips building a TLS context (~25 ms a client).
    return httpx.AsyncClient(base_url=base_url, timeout=10, verify=False)


@dataclass
class Api:
    server: Server
    http: httpx.AsyncClient
    admin_token: str
    data_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.admin_token)

    async def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**(bearer(token) if token is not None else self.admin), **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        response = await self.call(method, path, token, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json()

    async def login(self, username: str, password: str = PASSWORD, **form: str) -> dict[str, Any]:
        response = await self.http.post(
            "/oauth/token", data={"grant_type": "password", "username": username, "password": password, **form}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def user(self, username: str, *, admin: bool = False, scope: str | None = None) -> str:
        """Create a user and return a fresh access token for them."""
        await self.ok("POST", "/v1/users", json={"username": username, "password": PASSWORD, "admin": admin})
        extra = {"scope": scope} if scope else {}
        token: str = (await self.login(username, **extra))["access_token"]
        self.tokens[username] = token
        return token

    async def product(self, name: str, product_id: int, policy: str = "quarantine") -> dict[str, Any]:
        body = {"name": name, "id": product_id, "policy": policy}
        product: dict[str, Any] = (await self.ok("POST", "/v1/products", json=body))["product"]
        return product

    async def provision(self, identity: DeviceIdentity) -> None:
        key = identity.key.public.hex()
        await self.ok("POST", f"/v1/provisioning/{identity.device_id_hex}", json={"public_key": key})


async def start_api(tmp_path: Path, nursery: trio.Nursery, **config: Any) -> Api:
    cfg = ServerConfig(data_dir=tmp_path / "data", device_port=0, api_port=0, **config)
    startup = start_up(cfg)
    assert startup.admin_token_created == cfg.admin_token_path
    server: Server = await nursery.start(Server(startup.ctx, admin_token_created=startup.admin_token_created).serve)
    http = client(f"http://127.0.0.1:{server.api_port}")
    return Api(server, http, cfg.admin_token_path.read_text().strip(), cfg.data_dir)


@pytest.fixture
async def api(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Api]:
    running = await start_api(tmp_path, nursery)
    async with running.http:
        yield running
    running.server.shutdown()
    with trio.fail_after(10):
        await running.server.stopped.wait()
