"""Console login, logout, the session cookie and where it is (not) accepted, CSRF and Origin."""

from __future__ import annotations

import httpx
import trio

from tests.api.conftest import PASSWORD, Api, client

from .support import logged_in


async def test_root_redirects_to_the_console_and_the_console_to_login(api: Api) -> None:
    response = await api.http.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/"
    response = await api.http.get("/console/")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=%2Fconsole%2F"
    login = await api.http.get("/console/login")
    assert login.status_code == 200
    assert 'name="password"' in login.text


async def test_login_sets_a_strict_httponly_cookie_backed_by_a_console_token(api: Api) -> None:
    await api.user("alice")
    async with logged_in(api, "alice") as browser:
        jar = list(browser.http.cookies.jar)
        assert [c.name for c in jar] == ["fg_session"]
        tokens = await api.ok("GET", "/v1/access_tokens", api.tokens["alice"])
        assert "console" in [t["client"] for t in tokens["tokens"]]
    async with client(browser.origin) as http:
        raw = await http.post(
            "/console/login", data={"username": "alice", "password": PASSWORD}, headers={"Origin": browser.origin}
        )
    cookie = raw.headers["set-cookie"]
    assert "fg_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/" in cookie


async def test_a_wrong_password_shows_the_form_again_and_the_limiter_applies(api: Api) -> None:
    await api.user("bob")
    origin = f"http://127.0.0.1:{api.server.api_port}"
    statuses = []
    for _ in range(12):
        response = await api.http.post(
            "/console/login", data={"username": "bob", "password": "wrong"}, headers={"Origin": origin}
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert "try again later" in response.text
            assert "Retry-After" in response.headers
            break
        assert response.status_code == 400
        assert "wrong username or password" in response.text
    assert statuses[-1] == 429, statuses


async def test_login_refuses_a_cross_origin_post(api: Api) -> None:
    await api.user("carol")
    response = await api.http.post(
        "/console/login", data={"username": "carol", "password": PASSWORD}, headers={"Origin": "http://evil.example"}
    )
    assert response.status_code == 403
    assert "cross-origin" in response.text
    assert "set-cookie" not in response.headers


async def test_logout_needs_csrf_and_origin_and_revokes_the_session(api: Api) -> None:
    await api.user("dave")
    async with logged_in(api, "dave") as browser:
        assert (await browser.post("/console/logout", csrf="-")).status_code == 403
        assert (await browser.post("/console/logout", csrf="0" * 64)).status_code == 403
        assert (await browser.post("/console/logout", origin="http://evil.example")).status_code == 403
        assert (await browser.post("/console/logout", origin=None)).status_code == 403  # no Origin, no Sec-Fetch-Site
        cookie = browser.http.cookies["fg_session"]
        assert (await browser.get("/console/")).status_code == 200  # still logged in
        response = await browser.post("/console/logout")
        assert response.status_code == 303
        assert response.headers["location"] == "/console/login"
        # The token row is gone: the old cookie no longer opens anything.
        stale = await api.http.get("/console/", headers={"Cookie": f"fg_session={cookie}"})
        assert stale.status_code == 303
        assert stale.headers["location"].startswith("/console/login")


async def test_sec_fetch_site_same_origin_stands_in_for_a_missing_origin(api: Api) -> None:
    await api.user("erin")
    async with logged_in(api, "erin") as browser:
        response = await browser.http.post(
            "/console/logout", data={"csrf": browser.csrf}, headers={"Sec-Fetch-Site": "same-origin"}
        )
        assert response.status_code == 303
        cross = await api.http.post("/console/logout", headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403


async def test_the_cookie_is_not_accepted_by_the_json_api(api: Api) -> None:
    await api.user("frank", admin=True)
    product = await api.product("Cookies", 4101)
    async with logged_in(api, "frank") as browser:
        cookies = {"Cookie": f"fg_session={browser.http.cookies['fg_session']}"}
        plain = client(browser.origin)
        async with plain:
            body = {"id": "aa" * 12}
            write = await plain.post(f"/v1/products/{product['id']}/devices", json=body, headers=cookies)
            assert write.status_code == 401
            form = await plain.post(
                f"/v1/products/{product['id']}/events", data={"name": "x"},
                headers={"Origin": browser.origin, **cookies},
            )  # fmt: skip
            assert form.status_code == 401
            read = await plain.get("/v1/products", headers=cookies)
            assert read.status_code == 401
            # The GET event streams do take it (EventSource cannot send a header).
            assert await first_line(plain, f"/v1/products/{product['id']}/events", cookies) == ":ok"


async def first_line(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> str:
    """The first line of an event stream (read in a task that is then cancelled, as a browser leaves)."""
    lines: list[str] = []
    async with trio.open_nursery() as nursery:

        async def read() -> None:
            async with http.stream("GET", path, headers=headers, timeout=None) as response:
                assert response.status_code == 200, await response.aread()
                async for line in response.aiter_lines():
                    lines.append(line)
                    nursery.cancel_scope.cancel()

        nursery.start_soon(read)
    return lines[0]


async def test_an_api_token_in_the_cookie_is_not_a_console_session(api: Api) -> None:
    token = await api.user("gina")
    response = await api.http.get("/console/", headers={"Cookie": f"fg_session={token}"})
    assert response.status_code == 303
    stream = await api.http.get("/v1/products/1/events", headers={"Cookie": f"fg_session={token}"})
    assert stream.status_code == 401


async def test_console_pages_carry_security_headers(api: Api) -> None:
    await api.user("hal")
    async with logged_in(api, "hal") as browser:
        for path in ("/console/", "/console/login"):
            response = await browser.get(path)
            assert "default-src 'self'" in response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["referrer-policy"] == "same-origin"
        css = await browser.get("/console/static/console.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        js = await browser.get("/console/static/console.js")
        assert js.status_code == 200
        assert "innerHTML" not in js.text


async def test_the_product_picker_lists_only_the_users_products(api: Api) -> None:
    await api.product("Ours <b>bold</b>", 4201)
    await api.product("Theirs", 4202)
    await api.user("ivy")
    await api.ok("POST", "/v1/products/4201/team", json={"username": "ivy", "role": "view_only"})
    async with logged_in(api, "ivy") as browser:
        page = await browser.get("/console/")
        assert "Ours &lt;b&gt;bold&lt;/b&gt;" in page.text
        assert "Theirs" not in page.text
        assert "/console/products/4201/devices" in page.text


async def test_customers_cannot_log_in_to_the_console(api: Api) -> None:
    await api.product("Shop", 4301)
    await api.ok("POST", "/v1/products/4301/customers", json={"username": "cust", "password": PASSWORD})
    origin = f"http://127.0.0.1:{api.server.api_port}"
    response = await api.http.post(
        "/console/login", data={"username": "cust", "password": PASSWORD}, headers={"Origin": origin}
    )
    assert response.status_code == 403
    assert "customers use the API" in response.text


async def test_login_returns_only_to_console_pages(api: Api) -> None:
    await api.user("jo")
    origin = f"http://127.0.0.1:{api.server.api_port}"
    for target, expected in (
        ("/console/products/1/devices", "/console/products/1/devices"),
        ("//evil.example/console/", "/console/"),
        ("https://evil.example/", "/console/"),
        ("/v1/products", "/console/"),
    ):
        async with client(origin) as http:
            response = await http.post(
                "/console/login",
                data={"username": "jo", "password": PASSWORD, "next": target},
                headers={"Origin": origin},
            )
            assert response.status_code == 303
            assert response.headers["location"] == expected, target
