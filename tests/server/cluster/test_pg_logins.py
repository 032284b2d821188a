"""Failed-login limits are cluster-wide on PostgreSQL (cluster/pg/logins.py): two real nodes on one
database, guesses spread over both, and the limit is what one node allows, not twice it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from server.app import Server, start_up
from server.config import ServerConfig

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse battery"
SECRETS = b"s" * 32  # every node of a cluster is given the same secrets key


@asynccontextmanager
async def two_nodes(tmp_path: Path, database: str, nursery: trio.Nursery) -> AsyncIterator[list[str]]:
    servers: list[Server] = []
    try:
        for n in (1, 2):
            cfg = ServerConfig(data_dir=tmp_path / f"n{n}", device_port=0, api_port=0, database_url=database,
                               node_id=f"n{n}", secrets_key=SECRETS)  # fmt: skip
            servers.append(await nursery.start(Server(start_up(cfg).ctx).serve))
        yield [f"http://127.0.0.1:{s.api_port}" for s in servers]
    finally:
        for server in servers:
            server.shutdown()
        with trio.fail_after(15):
            for server in servers:
                await server.stopped.wait()


async def test_failed_logins_are_limited_across_nodes(tmp_path: Path, pg_dsn: str, nursery: trio.Nursery) -> None:
    async with two_nodes(tmp_path, pg_dsn, nursery) as (one, two), httpx.AsyncClient(timeout=10) as http:
        token = (tmp_path / "n1" / "admin.token").read_text().strip()
        made = await http.post(f"{one}/v1/users", json={"username": "erin", "password": PASSWORD},
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert made.status_code == 201, made.text

        async def attempt(api: str, username: str, password: str) -> httpx.Response:
            form = {"grant_type": "password", "username": username, "password": password}
            return await http.post(f"{api}/oauth/token", data=form)

        statuses = [(await attempt(one if i % 2 else two, "erin", "guess")).status_code for i in range(10)]
        assert statuses == [400] * 10  # five wrong guesses on each node: ten in all, the limit
        for api in (one, two):  # either node refuses the next: one node alone counted only five
            refused = await attempt(api, "erin", PASSWORD)
            assert refused.status_code == 429, refused.text
            assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await attempt(two, "ERIN", "guess")).status_code == 429  # other letter case, same name
        made = await http.post(f"{one}/v1/users", json={"username": "frank", "password": PASSWORD},
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert (await attempt(two, "frank", PASSWORD)).status_code == 200  # other names are not held up


async def test_a_right_password_forgives_the_names_failures_on_every_node(
    tmp_path: Path, pg_dsn: str, nursery: trio.Nursery
) -> None:
    async with two_nodes(tmp_path, pg_dsn, nursery) as (one, two), httpx.AsyncClient(timeout=10) as http:
        token = (tmp_path / "n1" / "admin.token").read_text().strip()
        made = await http.post(f"{one}/v1/users", json={"username": "gail", "password": PASSWORD},
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert made.status_code == 201, made.text
        form = {"grant_type": "password", "username": "gail"}
        for _ in range(9):
            assert (await http.post(f"{one}/oauth/token", data={**form, "password": "x"})).status_code == 400
        assert (await http.post(f"{two}/oauth/token", data={**form, "password": PASSWORD})).status_code == 200
        for _ in range(9):  # node one's nine were forgiven by the right password on node two
            assert (await http.post(f"{one}/oauth/token", data={**form, "password": "x"})).status_code == 400
