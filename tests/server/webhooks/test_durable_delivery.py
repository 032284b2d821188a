"""Durable webhook delivery across restarts: real server, real devices publishing over TCP, a real
HTTP receiver on loopback that is down while events wait and comes up after the restart."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from server.app import Server, start_up
from server.config import ServerConfig

from ...api.conftest import Api, client, start_api
from .receiver import receiving
from .test_webhooks_live import P, World, make_world, publish


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def restart(api: Api, nursery: trio.Nursery, **config: Any) -> Api:
    """Stop the server cleanly and start another on the same data directory."""
    api.server.shutdown()
    with trio.fail_after(15):
        await api.server.stopped.wait()
    await api.http.aclose()
    cfg = ServerConfig(data_dir=api.data_dir, device_port=0, api_port=0, **config)
    server: Server = await nursery.start(Server(start_up(cfg).ctx).serve)
    return Api(server, client(f"http://127.0.0.1:{server.api_port}"), api.admin_token, api.data_dir)


async def counters_when(api: Api, hook_id: int, ready: Callable[[dict[str, int]], bool]) -> dict[str, int]:
    with trio.fail_after(10):
        while True:
            history = await api.ok("GET", f"/v1/products/{P}/webhooks/{hook_id}/deliveries")
            counters: dict[str, int] = history["counters"]
            if ready(counters):
                return counters
            await trio.sleep(0.05)


async def test_pending_deliveries_survive_a_clean_restart(tmp_path: Path, nursery: trio.Nursery) -> None:
    config: dict[str, Any] = {"webhook_retry_delays": (0.2,), "webhook_allow_private": True}
    port = free_port()  # nobody listens yet: the receiver is down
    api = await start_api(tmp_path, nursery, **config)
    world = await make_world(api)
    hook = await api.ok(
        "POST", f"/v1/products/{P}/webhooks", json={"event": "temp", "url": f"http://127.0.0.1:{port}/"}
    )
    for member in world.members:
        await publish(world, member, [f"temp/{i}" for i in range(4)])
    before = await counters_when(api, hook["id"], lambda c: c["triggered"] == 8 and c["sent"] >= 2)
    assert before["succeeded"] == 0 and before["pending"] == 8

    api = await restart(api, nursery, **config)
    async with api.http, receiving(port=port) as receiver:
        await receiver.wait_for_keys(8)
        after = await counters_when(api, hook["id"], lambda c: c["succeeded"] == 8)
    assert len(receiver.keys) == 8
    # The counters went on from where they were: nothing restarted at 0.
    assert after["triggered"] == 8 and after["pending"] == 0 and after["failed"] == 0
    assert after["sent"] >= before["sent"] + 8 and after["retried"] >= before["retried"]
    api.server.shutdown()


async def test_a_delivery_past_its_retry_limit_is_failed_and_shown_after_a_restart(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    # Tries at 0, 0.1, 0.2 and 0.3 s; a fifth at 0.4 s would be past the 0.35 s limit.
    config: dict[str, Any] = {"webhook_retry_delays": (0.1,), "webhook_retry_for": 0.35, "webhook_allow_private": True}
    port = free_port()
    api = await start_api(tmp_path, nursery, **config)
    world: World = await make_world(api)
    hook = await api.ok(
        "POST", f"/v1/products/{P}/webhooks", json={"event": "temp", "url": f"http://127.0.0.1:{port}/"}
    )
    await publish(world, world.members[0], ["temp"])
    await counters_when(api, hook["id"], lambda c: c["failed"] == 1)

    api = await restart(api, nursery, **config)
    async with api.http, receiving(port=port) as receiver:
        history = await api.ok("GET", f"/v1/products/{P}/webhooks/{hook['id']}/deliveries")
        await trio.sleep(0.5)
    assert receiver.requests == []  # a failed delivery is not sent again
    assert history["counters"] | {} == {"triggered": 1, "sent": 4, "succeeded": 0, "retried": 3, "failed": 1,
                                        "refused": 0, "dropped": 0, "pending": 0}  # fmt: skip
    (failed,) = history["failed_deliveries"]
    assert failed["state"] == "failed" and failed["attempts"] == 4 and failed["last_status"] is None
    assert "Connect" in failed["error"]
    assert [e["attempt"] for e in history["errors"]] == [1, 2, 3, 4]
    api.server.shutdown()
