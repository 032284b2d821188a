"""Tokens: the first-run admin, the password and refresh grants, 401s, revocation, scopes, rate limits."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
import trio

from server.app import start_up
from server.config import ServerConfig
from server.logs import now
from server.ops.auth import hash_token, new_token
from server.ops.operations import Operations
from server.store.records import TokenRecord

from .conftest import PASSWORD, Api, bearer


async def test_first_run_writes_an_owner_only_admin_token_that_works(api: Api) -> None:
    path = api.data_dir / "admin.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(api.admin_token) == 40
    me = await api.ok("GET", "/v1/user")
    assert me == {"username": "admin", "admin": True, "products": []}
    tokens = (await api.ok("GET", "/v1/access_tokens"))["tokens"]
    assert tokens == [
        {
            "id": hash_token(api.admin_token).hex()[:12],
            "client": "first-run",
            "created_at": tokens[0]["created_at"],
            "expires_at": None,
            "scopes": ["*"],
        }
    ]


async def test_later_runs_leave_the_admin_and_token_alone(api: Api) -> None:
    before = (api.data_dir / "admin.token").read_text()
    again = start_up(ServerConfig(data_dir=api.data_dir))
    try:
        assert again.admin_token_created is None
        assert [u.username for u in again.ctx.store.sync.list_users()] == ["admin"]
    finally:
        again.ctx.store.sync.close()
    assert (api.data_dir / "admin.token").read_text() == before
    await api.ok("GET", "/v1/user")


async def test_password_grant_then_refresh(api: Api) -> None:
    await api.ok("POST", "/v1/users", json={"username": "alice", "password": PASSWORD})
    grant = await api.login("alice", client_id="particle", client_secret="particle")
    assert grant["token_type"] == "bearer" and grant["scope"] == "*"
    assert grant["expires_in"] == 90 * 86400
    assert len(grant["access_token"]) == len(grant["refresh_token"]) == 40
    me = await api.ok("GET", "/v1/user", grant["access_token"])
    assert me["username"] == "alice" and me["admin"] is False

    refreshed = await api.http.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["access_token"] != grant["access_token"] and new["refresh_token"] != grant["refresh_token"]
    await api.ok("GET", "/v1/user", new["access_token"])
    await api.ok("GET", "/v1/user", grant["access_token"])  # the old access token lives until it expires

    reused = await api.http.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    )
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    as_bearer = await api.call("GET", "/v1/user", new["refresh_token"])
    assert as_bearer.status_code == 401 and "refresh token" in as_bearer.json()["error_description"]


async def test_expires_in_zero_never_expires_and_listing_shows_expiry(api: Api) -> None:
    await api.ok("POST", "/v1/users", json={"username": "bob", "password": PASSWORD})
    forever = (await api.login("bob", expires_in="0"))["access_token"]
    hourly = (await api.login("bob", expires_in="3600"))["access_token"]
    tokens = {t["id"]: t for t in (await api.ok("GET", "/v1/access_tokens", forever))["tokens"]}
    assert tokens[hash_token(forever).hex()[:12]]["expires_at"] is None
    assert tokens[hash_token(hourly).hex()[:12]]["expires_at"].endswith("Z")
    bad = await api.http.post(
        "/oauth/token", data={"grant_type": "password", "username": "bob", "password": PASSWORD, "expires_in": "-1"}
    )
    assert bad.status_code == 400 and bad.json()["field"] == "expires_in"


async def test_missing_malformed_unknown_and_expired_tokens_get_401(api: Api) -> None:
    ops = Operations(api.server.ctx)
    expired = new_token()
    await ops.store_tokens([TokenRecord(hash_token(expired), 1, None, frozenset({"*"}), "test", now() - 10, now() - 1)])
    cases = {
        "missing": {},
        "not bearer": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "malformed": bearer("not-a-token"),
        "unknown": bearer(new_token()),
        "expired": bearer(expired),
    }
    for name, headers in cases.items():
        response = await api.http.get("/v1/products", headers=headers)
        assert response.status_code == 401, name
        assert response.json()["error"] == "invalid_token", name
        assert response.headers["www-authenticate"].startswith("Bearer"), name
    expired_body = (await api.http.get("/v1/user", headers=bearer(expired))).json()
    assert "expired" in expired_body["error_description"]


async def test_access_token_as_query_or_form_parameter(api: Api) -> None:
    me = await api.http.get("/v1/user", params={"access_token": api.admin_token})
    assert me.status_code == 200 and me.json()["username"] == "admin"
    await api.product("Widget", 7)
    device = "aa" * 12
    form = await api.http.post(
        "/v1/products/7/devices",
        data={"access_token": api.admin_token},
        files={"file": ("ids.txt", device.encode(), "text/plain")},
    )
    assert form.status_code == 200 and form.json()["updatedDeviceIds"] == [device]


async def test_revoking_tokens(api: Api) -> None:
    await api.ok("POST", "/v1/users", json={"username": "carol", "password": PASSWORD})
    first, second, third = [(await api.login("carol"))["access_token"] for _ in range(3)]
    assert (await api.ok("DELETE", "/v1/access_tokens/current", first)) == {"ok": True}
    assert (await api.call("GET", "/v1/user", first)).status_code == 401
    assert (await api.ok("DELETE", f"/v1/access_tokens/{second}", third)) == {"ok": True}
    assert (await api.call("GET", "/v1/user", second)).status_code == 401
    by_id = hash_token(third).hex()[:12]
    admins = await api.call("DELETE", f"/v1/access_tokens/{hash_token(api.admin_token).hex()[:12]}", third)
    assert admins.status_code == 404  # another user's token, by id: not theirs to see
    assert (await api.ok("DELETE", f"/v1/access_tokens/{by_id}", third)) == {"ok": True}
    assert (await api.call("GET", "/v1/user", third)).status_code == 401


async def test_wrong_or_unknown_credentials_are_one_error(api: Api) -> None:
    await api.ok("POST", "/v1/users", json={"username": "dave", "password": PASSWORD})
    for username, password in [("dave", "wrong password"), ("nobody", PASSWORD)]:
        response = await api.http.post(
            "/oauth/token", data={"grant_type": "password", "username": username, "password": password}
        )
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_grant", "error_description": "wrong username or password"}
    for form, error in [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "dave"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "x"}, "invalid_grant"),
    ]:
        response = await api.http.post("/oauth/token", data=form)
        assert response.status_code == 400 and response.json()["error"] == error, form
    missing = await api.http.post("/oauth/token", data={})
    assert missing.status_code == 400 and missing.json()["field"] == "grant_type"


async def test_failed_logins_are_rate_limited_per_username_and_client(api: Api) -> None:
    await api.ok("POST", "/v1/users", json={"username": "erin", "password": PASSWORD})
    await api.ok("POST", "/v1/users", json={"username": "frank", "password": PASSWORD})

    statuses: list[int] = []

    async def attempt(username: str, password: str) -> int:
        form = {"grant_type": "password", "username": username, "password": password}
        statuses.append((await api.http.post("/oauth/token", data=form)).status_code)
        return statuses[-1]

    async with trio.open_nursery() as nursery:  # guesses at once cannot slip past the limit together
        for _ in range(14):
            nursery.start_soon(attempt, "erin", "guess")
    assert sorted(statuses) == [400] * 10 + [429] * 4
    response = await api.http.post(
        "/oauth/token", data={"grant_type": "password", "username": "erin", "password": PASSWORD}
    )
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.json()["error"] == "too_many_attempts"
    assert await attempt("ERIN", PASSWORD) == 429  # the same username in other letter case
    assert await attempt("frank", PASSWORD) == 200  # other usernames from this client are unaffected


async def test_customers_log_in_within_a_product(api: Api) -> None:
    await api.product("Widget", 11)
    await api.product("Gadget", 12)
    await api.ok("POST", "/v1/products/11/customers", json={"username": "kim", "password": PASSWORD})
    unique = await api.login("kim")
    me = await api.ok("GET", "/v1/user", unique["access_token"])
    assert me == {"username": "kim", "customer": True, "product_id": 11}
    await api.ok("POST", "/v1/products/12/customers", json={"username": "kim", "password": PASSWORD})
    ambiguous = await api.http.post(
        "/oauth/token", data={"grant_type": "password", "username": "kim", "password": PASSWORD}
    )
    assert ambiguous.status_code == 400 and ambiguous.json()["field"] == "product"
    by_slug = await api.login("kim", product="gadget")
    assert (await api.ok("GET", "/v1/user", by_slug["access_token"]))["product_id"] == 12
    for path in ["/v1/products", "/v1/products/12", "/v1/products/12/devices"]:
        denied = await api.call("GET", path, by_slug["access_token"])
        assert denied.status_code == 403, path
    assert (await api.ok("GET", "/v1/access_tokens", by_slug["access_token"]))["tokens"][0]["scopes"] == ["*"]


async def test_scopes_narrow_what_a_token_may_do(api: Api) -> None:
    await api.product("Widget", 21)
    device = "bb" * 12
    await api.ok("POST", "/v1/products/21/devices", json={"id": device})
    # A server admin, so the token's scopes are the only thing narrowing what it may do.
    reader = await api.user("reader", admin=True, scope="devices:read audit:read")
    assert (await api.call("GET", "/v1/products/21/devices", reader)).status_code == 200
    assert (await api.call("GET", "/v1/products/21/audit", reader)).status_code == 200
    for method, path, body in [
        ("GET", "/v1/products/21", None),
        ("PUT", f"/v1/products/21/devices/{device}", {"notes": "x"}),
        ("POST", "/v1/users", {"username": "x1", "password": PASSWORD}),
        ("POST", f"/v1/provisioning/{device}", {"public_key": "cc" * 32}),
    ]:
        response = await api.call(method, path, reader, json=body)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"] == "insufficient_scope", (method, path)

    listing = (await api.ok("GET", "/v1/access_tokens", reader))["tokens"]
    assert {tuple(t["scopes"]) for t in listing} == {("audit:read", "devices:read")}
    bad = await api.http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "reader", "password": PASSWORD, "scope": "devices:fly"},
    )
    assert bad.status_code == 400 and bad.json()["field"] == "scope" and bad.json()["error"] == "invalid_scope"


async def test_refresh_cannot_widen_scopes(api: Api) -> None:
    await api.ok("POST", "/v1/users", json={"username": "gina", "password": PASSWORD})
    grant = await api.login("gina", scope="devices:read products:read")
    narrower = await api.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"], "scope": "devices:read"},
    )
    assert narrower.status_code == 200 and narrower.json()["scope"] == "devices:read"
    wider = await api.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": narrower.json()["refresh_token"], "scope": "*"},
    )
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_token_file_is_replaced_when_the_first_run_never_committed(tmp_path: Path) -> None:
    """A token file without a committed admin (a crash between the two) is not trusted."""
    config = ServerConfig(data_dir=tmp_path)
    config.admin_token_path.write_text("stale\n")
    startup = start_up(config)
    try:
        assert startup.admin_token_created == config.admin_token_path
        token = config.admin_token_path.read_text().strip()
        assert token != "stale" and startup.ctx.store.sync.get_token(hash_token(token)) is not None
        assert stat.S_IMODE(config.admin_token_path.stat().st_mode) == 0o600
    finally:
        startup.ctx.store.sync.close()


async def test_access_log_has_one_line_per_request_and_never_a_token(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    await api.ok("POST", "/v1/users", json={"username": "hank", "password": PASSWORD})
    doomed = (await api.login("hank"))["access_token"]
    caplog.clear()
    await api.http.get("/v1/user", params={"access_token": api.admin_token})
    await api.call("DELETE", f"/v1/access_tokens/{doomed}")

    def requests_logged() -> list[dict[str, object]]:
        lines = [r for r in caplog.records if r.name == "fleetgate.http.access" and r.levelno == logging.INFO]
        return [f for f in (getattr(r, "fields", {}) for r in lines) if f["path"] != "/oauth/token"]

    with trio.fail_after(5):  # Hypercorn logs a request just after the client has its answer
        while len(requests_logged()) < 2:  # noqa: ASYNC110 (a log has no event to wait on)
            await trio.sleep(0.01)
    fields = requests_logged()
    assert [(f["method"], f["path"], f["status"]) for f in fields] == [
        ("GET", "/v1/user", 200),
        ("DELETE", "/v1/access_tokens/{token}", 200),
    ]
    logged = " ".join(str(getattr(r, "fields", "")) + r.getMessage() for r in caplog.records)
    assert api.admin_token not in logged and doomed not in logged
