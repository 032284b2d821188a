"""Webhook dispatch writes only while this node's leader epoch is the cluster's (as rollout steps
do): a node whose lead another node has taken, though it has not noticed yet, records no outcome
and makes no delivery. A real node on PostgreSQL, a real device publishing over TCP, a real
receiver; "another node took the lead" is the epoch bump that node's acquisition makes.

Needs FLEETGATE_TEST_DATABASE_URL (tests/cluster_pg.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest
import trio

from firmware_sim.device import DeviceSettings, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import AckResult, Status
from server.app import Server, start_up
from server.config import ServerConfig
from tests.cluster_pg import fresh_database

from .receiver import Answer, receiving

pytestmark = pytest.mark.postgres

P = 4921


def rows(database: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database) as conn:
        return conn.execute(query).fetchall()


async def test_a_replaced_leader_records_no_outcome_and_makes_no_delivery(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    with fresh_database() as database:
        cfg = ServerConfig(data_dir=tmp_path / "n1", device_port=0, api_port=0, database_url=database, node_id="n1",
                           webhook_allow_private=True, webhook_retry_delays=(0.2,))  # fmt: skip
        startup = start_up(cfg)
        server: Server = await nursery.start(Server(startup.ctx).serve)
        try:
            token = cfg.admin_token_path.read_text().strip()
            api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.api_port}", timeout=10,
                                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            identity = DeviceIdentity.generate()
            async with api, receiving() as receiver:
                assert (await api.post("/v1/products", json={"name": "Fenced", "id": P})).status_code == 201
                key = {"public_key": identity.key.public.hex()}
                assert (await api.post(f"/v1/provisioning/{identity.device_id_hex}", json=key)).is_success
                assert (await api.post(f"/v1/products/{P}/devices", json={"id": identity.device_id_hex})).is_success
                hook = {"event": "temp", "url": receiver.url + "/in"}
                assert (await api.post(f"/v1/products/{P}/webhooks", json=hook)).is_success
                with trio.fail_after(10):
                    while startup.ctx.bus.leader.epoch is None:  # type: ignore[attr-defined]  # noqa: ASYNC110
                        await trio.sleep(0.05)
                receiver.script = [Answer(200, b"late", delay=1.0)]
                stream = await trio.open_tcp_stream("127.0.0.1", server.device_port)
                settings = DeviceSettings(product_id=P)
                async with connect_device(stream, identity, startup.ctx.server_key.public, settings) as device:
                    assert device.state.status is Status.OK
                    assert await device.publish("temp/1", b"1") is AckResult.ACCEPTED
                    with trio.fail_after(10):
                        while not receiver.requests:  # noqa: ASYNC110
                            await trio.sleep(0.02)
                    # While the request is out, another node takes the lead (its acquisition bumps the epoch).
                    with psycopg.connect(database, autocommit=True) as other:
                        other.execute("UPDATE cluster_leader SET epoch = epoch + 1, node_id = 'n2'")
                    await trio.sleep(1.5)  # the answer came; its outcome was not recorded
                    assert rows(database, "SELECT state, attempts FROM webhook_deliveries") == [("pending", 0)]
                    (cursor_before,) = rows(database, "SELECT cursor FROM webhook_dispatch")[0]

                    assert await device.publish("temp/2", b"2") is AckResult.ACCEPTED  # stored: the device's write
                    await trio.sleep(1.0)
                    assert len(rows(database, "SELECT id FROM webhook_deliveries")) == 1  # no delivery made
                    assert rows(database, "SELECT cursor FROM webhook_dispatch")[0][0] == cursor_before
                    assert len(receiver.requests) == 1
                    assert not [e for e in rows(database, "SELECT name FROM events") if str(e[0]).startswith("hook-")]
        finally:
            server.shutdown()
            with trio.fail_after(15):
                await server.stopped.wait()
