"""A failure inside the webhook service does not take the server down (server/supervisor.py).

The fault is injected where the one real case was found: a host name that is no IDNA name made the
delivery's DNS lookup raise UnicodeError, which no path of the service expected (creation now
refuses such names and the guard turns them into a refused delivery: test_rules.py). Here the
guard raises what the service does not expect. Before supervision that exception left the service
and stopped the whole server; now the service is restarted after its backoff, while the devices
connected stay served, new ones connect, and the API answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from firmware_sim.device import DeviceSettings, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import AckResult, Status
from server.webhooks import guard

from ...api.conftest import start_api

P = 4911
URL = "https://8.8.8.8/in"  # a public literal: creation takes it; the guard is what fails


async def _unexpected(url: str, allow_private: bool) -> guard.Pinned:
    raise RuntimeError("a fault no path of the webhook service expects")


async def test_the_server_keeps_serving_devices_while_the_webhook_service_fails(
    tmp_path: Path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guard, "pin", _unexpected)
    api = await start_api(tmp_path, nursery)
    async with api.http:
        first, second = DeviceIdentity.generate(), DeviceIdentity.generate()
        await api.ok("POST", "/v1/products", json={"name": "Meter", "id": P})
        for identity in (first, second):
            await api.ok("POST", f"/v1/provisioning/{identity.device_id_hex}",
                         json={"public_key": identity.key.public.hex()})  # fmt: skip
            await api.ok("POST", f"/v1/products/{P}/devices", json={"id": identity.device_id_hex})
        await api.ok("POST", f"/v1/products/{P}/webhooks", json={"event": "temp", "url": URL})
        server, supervisor = api.server, api.server.ctx.supervisor
        key, settings = server.ctx.server_key.public, DeviceSettings(product_id=P)
        stream = await trio.open_tcp_stream("127.0.0.1", server.device_port)
        async with connect_device(stream, first, key, settings) as device:
            assert device.state.status is Status.OK
            assert await device.publish("temp", b"21.5") is AckResult.ACCEPTED  # triggers the webhook
            with trio.fail_after(10):
                while supervisor.failures["webhooks"] < 1:  # noqa: ASYNC110 (a counter: nothing to wait on)
                    await trio.sleep(0.05)
            # The service failed: the server still serves the device connected, a new one, and the API.
            assert await device.publish("humidity", b"40") is AckResult.ACCEPTED
            stream2 = await trio.open_tcp_stream("127.0.0.1", server.device_port)
            async with connect_device(stream2, second, key, settings) as other:
                assert other.state.status is Status.OK
                assert await other.publish("humidity", b"41") is AckResult.ACCEPTED
            listed = await api.ok("GET", f"/v1/products/{P}/devices")
            assert len(listed["devices"]) == 2
            # And it was restarted: the pending delivery fails it again after the 1 s backoff.
            with trio.fail_after(10):
                while supervisor.failures["webhooks"] < 2:  # noqa: ASYNC110
                    await trio.sleep(0.05)
        assert not server.stopped.is_set()
    server.shutdown()
    with trio.fail_after(10):
        await server.stopped.wait()
