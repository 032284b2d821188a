"""Nothing an API caller sends produces a 500: fuzzed bodies and paths, oversize bodies, and an
OpenAPI document that says what the API really answers."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Api, bearer
from .shared import server_in_thread

P = 77

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
DEVICE_IDS = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF", min_size=22, max_size=26),
    st.text(max_size=40),
    JSON,
)


def shaped(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the fields a route expects (or not), holding plausible or arbitrary values."""
    known = st.fixed_dictionaries({}, optional={name: values | JSON for name, values in keys.items()})
    return st.one_of(known, st.dictionaries(st.sampled_from([*keys, "x"]), JSON, max_size=4))


@st.composite
def requests(draw: st.DrawFn, keys: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["json", "raw", "multipart"]))
    if kind == "json":
        body = json.dumps(draw(st.one_of(shaped(keys), JSON)))
        return {"content": body, "headers": {"content-type": "application/json"}}
    if kind == "raw":
        content_type = draw(
            st.sampled_from(
                [
                    "application/json",
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                    "multipart/form-data; boundary=xyz",
                ]
            )
        )
        return {"content": draw(st.binary(max_size=200)), "headers": {"content-type": content_type}}
    field = draw(st.sampled_from(["file", "other"]))
    return {"files": {field: ("f.csv", draw(st.binary(max_size=300)), "text/csv")}}


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with (
        server_in_thread(tmp_path_factory.mktemp("fuzz") / "data") as (base_url, admin_token),
        httpx.Client(base_url=base_url, headers=bearer(admin_token), timeout=10, verify=False) as http,
    ):
        assert http.post("/v1/products", json={"name": "Fuzz", "id": P}).status_code == 201
        yield http


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"], response.text


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(requests({"id": DEVICE_IDS, "move": st.booleans()}))
def test_fuzzed_device_additions_never_crash(fuzz: httpx.Client, request: dict[str, Any]) -> None:
    check(fuzz.post(f"/v1/products/{P}/devices", **request))


@FUZZ
@given(requests({"name": st.text(max_size=200), "policy": st.sampled_from(["quarantine", "auto_approve", "x"])}))
def test_fuzzed_product_updates_never_crash(fuzz: httpx.Client, request: dict[str, Any]) -> None:
    check(fuzz.put(f"/v1/products/{P}", **request))


@FUZZ
@given(
    st.sampled_from(["GET", "PUT", "DELETE", "POST"]),
    st.text(min_size=1, max_size=80),
    st.one_of(DEVICE_IDS.filter(lambda v: isinstance(v, str) and v != ""), st.just(secrets.token_hex(12))),
)
def test_fuzzed_paths_never_crash(fuzz: httpx.Client, method: str, product: str, device: str) -> None:
    check(fuzz.request(method, f"/v1/products/{quote(product, safe='')}/devices/{quote(str(device), safe='')}"))
    check(fuzz.request(method, f"/v1/products/{quote(product, safe='')}"))


async def test_oversize_bodies_are_refused_before_they_are_read(api: Api) -> None:
    await api.product("Widget", 5)
    stream = await trio.open_tcp_stream("127.0.0.1", api.server.api_port)
    async with stream:
        await stream.send_all(
            b"POST /v1/products/5/devices HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Authorization: Bearer " + api.admin_token.encode() + b"\r\nContent-Length: 20000000\r\n\r\n"
        )
        reply = b""
        with trio.fail_after(5):
            while b"}" not in reply:
                chunk = await stream.receive_some(4096)
                assert chunk, reply.decode()
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 413") and b'"error"' in reply
    assert (await api.ok("GET", "/v1/products/5"))["product"]["id"] == 5


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    missing = await api.call("GET", "/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]
    wrong = await api.call("PATCH", "/v1/products")
    assert wrong.status_code == 405 and wrong.json()["error"]


async def test_openapi_documents_every_route_with_our_error_shapes(api: Api) -> None:
    doc = (await api.http.get("/openapi.json")).json()
    paths = doc["paths"]
    expected = {
        "/oauth/token": {"post"},
        "/v1/access_tokens": {"get"},
        "/v1/access_tokens/current": {"delete"},
        "/v1/access_tokens/{token}": {"delete"},
        "/v1/user": {"get"},
        "/v1/users": {"post"},
        "/v1/products": {"get", "post"},
        "/v1/products/{product}": {"get", "put"},
        "/v1/products/{product}/devices": {"get", "post"},
        "/v1/products/{product}/device_counts": {"get"},
        "/v1/products/{product}/changes": {"get"},
        "/v1/products/{product}/devices/{device_id}": {"get", "put", "delete"},
        "/v1/products/{product}/devices/{device_id}/owner": {"put", "delete"},
        "/v1/products/{product}/team": {"get", "post"},
        "/v1/products/{product}/team/{username}": {"delete"},
        "/v1/products/{product}/customers": {"get", "post"},
        "/v1/products/{product}/audit": {"get"},
        "/v1/products/{product}/firmware": {"get", "post"},
        "/v1/products/{product}/firmware/release": {"put"},
        "/v1/products/{product}/firmware/release/preview": {"post"},
        "/v1/products/{product}/firmware/{version}": {"get", "put", "delete"},
        "/v1/products/{product}/firmware/{version}/binary": {"get"},
        "/v1/products/{product}/groups": {"get", "post"},
        "/v1/products/{product}/groups/{name}": {"get", "delete"},
        "/v1/products/{product}/events": {"get", "post"},
        "/v1/products/{product}/events/{prefix}": {"get"},
        "/v1/products/{product}/event_history": {"get"},
        "/v1/devices/events": {"get", "post"},
        "/v1/devices/events/{prefix}": {"get"},
        "/v1/devices/{device_id}/events": {"get"},
        "/v1/devices/{device_id}/events/{prefix}": {"get"},
        "/v1/products/{product}/devices/{device_id}/events": {"get"},
        "/v1/products/{product}/devices/{device_id}/events/{prefix}": {"get"},
        "/v1/products/{product}/device_claims": {"post"},
        "/v1/products/{product}/rollouts": {"get", "post"},
        "/v1/products/{product}/rollouts/preview": {"post"},
        "/v1/products/{product}/rollouts/{rollout_id}": {"get"},
        "/v1/products/{product}/rollouts/{rollout_id}/devices": {"get"},
        "/v1/products/{product}/rollouts/{rollout_id}/pause": {"post"},
        "/v1/products/{product}/rollouts/{rollout_id}/resume": {"post"},
        "/v1/products/{product}/rollouts/{rollout_id}/abort": {"post"},
        "/v1/products/{product}/webhooks": {"get", "post"},
        "/v1/products/{product}/webhooks/{webhook_id}": {"get", "put", "delete"},
        "/v1/products/{product}/webhooks/{webhook_id}/deliveries": {"get"},
        "/v1/webhooks": {"get"},
        "/v1/provisioning": {"post"},
        "/v1/provisioning/{device_id}": {"post"},
        "/v1/devices": {"get"},
        "/v1/devices/{device_id}": {"get"},
        "/healthz": {"get"},
        "/readyz": {"get"},
    }
    assert {path: set(ops) for path, ops in paths.items()} == expected
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses and "400" in responses, (method, path)
            if path not in ("/oauth/token", "/healthz", "/readyz"):  # those take no token
                assert {"401", "403"} <= set(responses), (method, path)
    add = paths["/v1/products/{product}/devices"]["post"]["requestBody"]["content"]
    assert set(add) == {"application/json", "multipart/form-data"}
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and {"RequestErrorOut", "AuthErrorOut", "DeviceOut"} <= set(schemas)
    assert set(doc["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyQuery"}


async def test_chunked_bodies_are_cut_off_at_the_limit(api: Api) -> None:
    await api.product("Widget", 6)
    chunk = b"0" * (1024 * 1024)
    stream = await trio.open_tcp_stream("127.0.0.1", api.server.api_port)

    async def send_forever() -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(
                b"POST /v1/products/6/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + api.admin_token.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            while True:
                await stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    reply = b""
    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(send_forever)
        with trio.fail_after(10):
            while b"}" not in reply:
                data = await stream.receive_some(4096)
                assert data, reply.decode()
                reply += data
        nursery.cancel_scope.cancel()
    assert reply.startswith(b"HTTP/1.1 413") and b"larger than" in reply
    assert (await api.ok("GET", "/v1/products/6"))["product"]["id"] == 6
