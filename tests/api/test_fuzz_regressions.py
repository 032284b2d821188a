"""The cases the schema-driven fuzz run (test_schema_fuzz.py) found, each as a plain request."""

from __future__ import annotations

import httpx
import trio

from .conftest import Api


async def test_an_event_id_past_sqlite_integers_is_a_400_not_a_broken_stream(api: Api) -> None:
    # Was: 200, then the stream broke mid-chunk (OverflowError binding the ID in the replay query).
    with trio.fail_after(5):
        for after in ("9223372036988993533", str(10**18)):
            response = await api.call("GET", "/v1/devices/events/0", params={"after": after})
            assert response.status_code == 400, response.text
            assert response.json()["field"] == "after"


async def test_a_malformed_token_request_answers_in_oauth_shape(api: Api) -> None:
    for form in ({}, {"grant_type": "password", "expires_in": "soon"}):
        response = await api.http.post("/oauth/token", data=form)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == "invalid_request" and body["error_description"], body


async def test_a_405_allows_every_method_the_path_takes(api: Api) -> None:
    cases = {
        "/v1/products": {"GET", "HEAD", "POST"},
        "/v1/products/1/devices/aa": {"GET", "HEAD", "PUT", "DELETE"},
        "/oauth/token": {"POST"},
    }
    for path, methods in cases.items():
        response: httpx.Response = await api.call("PATCH", path)
        assert response.status_code == 405, (path, response.text)
        assert set(response.headers["allow"].split(", ")) == methods, (path, response.headers["allow"])


async def test_the_schema_states_the_limits_the_api_enforces(api: Api) -> None:
    # Was: a schema-valid request refused with 400 (a 7-character password, product ID 0, retries 101 ...).
    document = (await api.http.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    # POST /v1/users reads JSON or a form itself: its body's schema is inline, not a component.
    user = document["paths"]["/v1/users"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert user["password"]["minLength"] == 8 and user["username"]["pattern"]
    product = schemas["ProductIn"]["properties"]
    product_id = product["id"]["anyOf"][0]
    assert (product_id["minimum"], product_id["maximum"]) == (1, 2**31 - 1)
    assert product["slug"]["anyOf"][0]["pattern"] and product["name"]["minLength"] == 1
    rollout = schemas["RolloutIn"]["properties"]
    assert (rollout["retries"]["minimum"], rollout["retries"]["maximum"]) == (0, 100)
    assert (rollout["version"]["minimum"], rollout["version"]["maximum"]) == (1, 65535)
    assert schemas["ProvisionIn"]["properties"]["public_key"]["pattern"] == "^[0-9a-fA-F]{64}$"
