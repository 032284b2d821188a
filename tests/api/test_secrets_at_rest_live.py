"""Secrets at rest through a running server: what the API is given is sealed in the database,
and a database from before sealing is upgraded in place and its webhooks still sign."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
import trio

from server.rules.webhook_model import Auth, WebhookSpec
from server.webhooks.request import EVENT_ID_HEADER, SIGNATURE_HEADER

from ..server.store.plain_database import make_plain_database, on_disk
from ..server.webhooks.receiver import Received, receiving
from .conftest import Api, start_api

pytestmark = pytest.mark.sqlite_only  # the SQLite file's own bytes and backups

P = 4901
PASSWORD = "only-the-receiver-knows-this-one"


def signed_with(secret: str, request: Received) -> bool:
    parts = dict(p.split("=", 1) for p in request.headers[SIGNATURE_HEADER.lower()].split(","))
    message = f"{parts['t']}.{request.headers[EVENT_ID_HEADER.lower()]}.".encode() + request.body
    return hmac.compare_digest(hmac.new(bytes.fromhex(secret), message, hashlib.sha256).hexdigest(), parts["v1"])


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


async def test_what_the_api_is_given_is_not_in_the_database_files(api: Api) -> None:
    await api.product("Meter", P)
    body = {"event": "temp", "url": "https://example.com/in", "auth": {"username": "meter", "password": PASSWORD}}
    created = await api.ok("POST", f"/v1/products/{P}/webhooks", json=body)
    await api.ok("PUT", f"/v1/products/{P}/webhooks/{created['id']}",
                 json={**body, "auth": {"username": "meter", "password": PASSWORD + "-2"}})  # fmt: skip
    stored = on_disk(api.data_dir / "fleetgate.db")
    for plain in (created["secret"], PASSWORD, basic("meter", PASSWORD)[6:]):
        assert plain.encode() not in stored, plain
    assert created["secret"].encode().hex().encode() not in stored
    shown = await api.ok("GET", f"/v1/products/{P}/webhooks/{created['id']}")
    assert "fgs1:" not in str(shown)  # nothing above the store sees ciphertext


async def test_a_plain_text_database_is_upgraded_and_its_webhooks_still_sign(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    secret = "c0ffee" * 10 + "c0de"
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    async with receiving() as receiver:
        spec = WebhookSpec("temp", receiver.url + "/in", auth=Auth("meter", PASSWORD))
        make_plain_database(data / "fleetgate.db", P, [(spec, secret)])
        running = await start_api(tmp_path, nursery, webhook_allow_private=True)
        async with running.http:
            stored = on_disk(data / "fleetgate.db")
            assert secret.encode() not in stored and PASSWORD.encode() not in stored
            await running.ok("POST", f"/v1/products/{P}/events", json={"name": "temp/api", "data": "1"})
            await receiver.wait_for(1)
        running.server.shutdown()
    [request] = receiver.requests
    assert signed_with(secret, request)
    assert request.headers["authorization"] == basic("meter", PASSWORD)
