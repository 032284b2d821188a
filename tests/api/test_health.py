"""GET /healthz and GET /readyz (docs/API.md, "Health"): unauthenticated, in the schema, and
readiness names what fails without telling anything about where or how."""

from __future__ import annotations

import pytest
import trio

from server.health import NodeHealth

from .conftest import Api


async def test_healthz_answers_ok_without_a_token(api: Api) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_without_a_token_on_a_serving_node(api: Api) -> None:
    response = await api.http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "failing": []}


async def test_readyz_is_503_naming_shutdown_once_the_server_stops(api: Api) -> None:
    api.server.ctx.health.stopping = True  # what Server.shutdown() sets first, before the API closes
    response = await api.http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failing": ["shutting_down"]}


async def test_both_are_in_the_schema_without_security(api: Api) -> None:
    schema = (await api.http.get("/openapi.json")).json()
    for path in ("/healthz", "/readyz"):
        operation = schema["paths"][path]["get"]
        assert "security" not in operation, path
    assert "503" in schema["paths"]["/readyz"]["get"]["responses"]


async def test_a_probe_past_its_deadline_counts_the_database_unready(api: Api) -> None:
    """A store that does not answer within the deadline (a read stuck on an unreachable database)
    fails the probe at the deadline; the stuck thread is left to finish on its own."""
    health, store = NodeHealth(), api.server.ctx.store
    release = trio.Event()
    token = trio.lowlevel.current_trio_token()
    real_ping = store.sync.ping

    def stuck() -> None:  # blocks its worker thread as a read waiting on a dead connection does
        trio.from_thread.run(release.wait, trio_token=token)

    store.sync.ping = stuck  # type: ignore[method-assign]
    try:
        with trio.fail_after(5):
            assert await health.store_answers(store, deadline=0.2) is False
            assert await health.store_answers(store, deadline=0.2) is False  # the first still holds the probe
    finally:
        release.set()
        store.sync.ping = real_ping  # type: ignore[method-assign]
    await trio.sleep(0.1)
    assert await health.store_answers(store) is True


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_they_tell_nothing_of_the_database(api: Api, path: str) -> None:
    text = (await api.http.get(path)).text
    assert str(api.data_dir) not in text and "fleetgate.db" not in text
