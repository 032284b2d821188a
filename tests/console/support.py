"""Driving the console over HTTP as a browser would: a cookie jar, the page's CSRF token, Origin."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from tests.api.conftest import PASSWORD, Api, client

_CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]*)">')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, html[:500]
    return found.group(1)


@dataclass
class Browser:
    """One logged-in console user: httpx with the session cookie, sending what a browser sends."""

    http: httpx.AsyncClient
    origin: str
    csrf: str = ""

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        response = await self.http.get(path, **kwargs)  # type: ignore[arg-type]
        if "csrf-token" in response.text:
            self.csrf = csrf_of(response.text) or self.csrf
        return response

    async def post(
        self, path: str, data: Mapping[str, str | list[str]] | None = None, *, csrf: str | None = None,
        origin: str | None = "", **kwargs: object,
    ) -> httpx.Response:  # fmt: skip
        form: dict[str, str | list[str]] = {"csrf": self.csrf if csrf is None else csrf, **(data or {})}
        if csrf == "-":
            form.pop("csrf")
        headers = {} if origin is None else {"Origin": origin or self.origin}
        return await self.http.post(path, data=form, headers=headers, **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def logged_in(api: Api, username: str, password: str = PASSWORD) -> AsyncIterator[Browser]:
    origin = f"http://127.0.0.1:{api.server.api_port}"
    async with client(origin) as http:
        response = await http.post(
            "/console/login", data={"username": username, "password": password}, headers={"Origin": origin}
        )
        assert response.status_code == 303, response.text
        browser = Browser(http, origin)
        page = await browser.get("/console/")
        assert page.status_code == 200, page.text
        yield browser
