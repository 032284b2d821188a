"""Authorization matrix: every role against representative endpoints, over real HTTP.

Roles: server admin, the four team roles of product P, a user outside P's team, a customer
of P, and no token at all. Each case prepares its own target (with the admin token) so cases
are independent; the expected answer is 2xx when the role table of docs/API.md allows it,
else 403 (401 without a token).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from .conftest import PASSWORD, bearer, client
from .shared import server_in_thread

P = 4242
ROLES = ["admin", "administrator", "developer", "support", "view_only", "outsider", "customer", "anonymous"]
SUPPORT_UP = {"admin", "administrator", "developer", "support"}
DEVELOPER_UP = {"admin", "administrator", "developer"}
ADMINISTRATOR_UP = {"admin", "administrator"}
TEAM = SUPPORT_UP | {"view_only"}
USERS = TEAM | {"outsider"}
EVERYONE = USERS | {"customer"}
_names = itertools.count()


@dataclass
class World:
    base_url: str
    tokens: dict[str, str]

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.tokens["admin"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with server_in_thread(tmp_path_factory.mktemp("matrix") / "data") as (base_url, admin_token):
        with httpx.Client(base_url=base_url, headers=bearer(admin_token), timeout=10) as http:

            def post(path: str, body: dict[str, object]) -> None:
                response = http.post(path, json=body)
                assert response.status_code == 201, response.text

            def login(username: str, **extra: str) -> str:
                form = {"grant_type": "password", "username": username, "password": PASSWORD, **extra}
                response = http.post("/oauth/token", data=form, headers={})
                assert response.status_code == 200, response.text
                token: str = response.json()["access_token"]
                return token

            post("/v1/products", {"name": "Matrix", "id": P})
            tokens = {"admin": admin_token}
            for role in ["administrator", "developer", "support", "view_only", "outsider", "spare"]:
                post("/v1/users", {"username": role, "password": PASSWORD})
                if role not in ("outsider", "spare"):
                    post(f"/v1/products/{P}/team", {"username": role, "role": role})
                tokens[role] = login(role)
            post(f"/v1/products/{P}/customers", {"username": "customer", "password": PASSWORD})
            tokens["customer"] = login("customer", product=str(P))
        yield World(base_url, tokens)


def fresh_id() -> str:
    return secrets.token_hex(12)


def fresh_name(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


Prepare = Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[tuple[str, str, dict[str, object]]]]


async def _preadded(http: httpx.AsyncClient, admin: dict[str, str]) -> str:
    device = fresh_id()
    response = await http.post(f"/v1/products/{P}/devices", json={"id": device}, headers=admin)
    assert response.status_code == 200, response.text
    return device


async def _denied(http: httpx.AsyncClient, admin: dict[str, str]) -> str:
    device = await _preadded(http, admin)
    response = await http.request("DELETE", f"/v1/products/{P}/devices/{device}", json={"deny": True}, headers=admin)
    assert response.status_code == 200, response.text
    return device


def static(method: str, path: str, body: dict[str, object] | None = None) -> Prepare:
    async def prepare(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
        return method, path, ({"json": body} if body is not None else {})

    return prepare


async def edit_device(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    return "PUT", f"/v1/products/{P}/devices/{await _preadded(http, admin)}", {"json": {"notes": "checked"}}


async def approve_denied(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    return "POST", f"/v1/products/{P}/devices", {"json": {"id": await _denied(http, admin)}}


async def deny_device(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    return "DELETE", f"/v1/products/{P}/devices/{await _preadded(http, admin)}", {"json": {"deny": True}}


async def preadd(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    return "POST", f"/v1/products/{P}/devices", {"json": {"id": fresh_id()}}


async def import_file(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    content = f"{fresh_id()}\n{fresh_id()}\n".encode()
    # Encoded up front: httpx's streaming multipart body warns (ResourceWarning, an error here)
    # when a refusal answers before the body was read, which made these cases flaky.
    boundary = secrets.token_hex(8)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="ids.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return "POST", f"/v1/products/{P}/devices", {"content": body, "headers": headers}


async def remove_device(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    return "DELETE", f"/v1/products/{P}/devices/{await _preadded(http, admin)}", {}


async def set_owner(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    path = f"/v1/products/{P}/devices/{await _preadded(http, admin)}/owner"
    return "PUT", path, {"json": {"customer": "customer"}}


async def team_remove(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    response = await http.post(f"/v1/products/{P}/team", json={"username": "spare", "role": "support"}, headers=admin)
    assert response.status_code == 201, response.text
    return "DELETE", f"/v1/products/{P}/team/spare", {}


async def create_customer(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    return "POST", f"/v1/products/{P}/customers", {"json": {"username": fresh_name("c"), "password": PASSWORD}}


async def provision(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    return "POST", f"/v1/provisioning/{fresh_id()}", {"json": {"public_key": secrets.token_hex(32)}}


async def create_user(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    return "POST", "/v1/users", {"json": {"username": fresh_name("u"), "password": PASSWORD}}


async def create_product(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    return "POST", "/v1/products", {"json": {"name": fresh_name("Product ")}}


WEBHOOK: dict[str, object] = {"event": "temp", "url": "https://example.com/hook"}


async def delete_webhook(http: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, dict[str, object]]:
    response = await http.post(f"/v1/products/{P}/webhooks", json=WEBHOOK, headers=admin)
    assert response.status_code == 201, response.text
    return "DELETE", f"/v1/products/{P}/webhooks/{response.json()['id']}", {}


# endpoint name -> (prepare, roles allowed)
CASES: dict[str, tuple[Prepare, set[str]]] = {
    "get product": (static("GET", f"/v1/products/{P}"), TEAM),
    "list devices": (static("GET", f"/v1/products/{P}/devices"), TEAM),
    "device counts": (static("GET", f"/v1/products/{P}/device_counts"), TEAM),
    "get team": (static("GET", f"/v1/products/{P}/team"), TEAM),
    "list customers": (static("GET", f"/v1/products/{P}/customers"), TEAM),
    "read audit": (static("GET", f"/v1/products/{P}/audit"), TEAM),
    "edit device": (edit_device, SUPPORT_UP),
    "approve": (approve_denied, SUPPORT_UP),
    "deny": (deny_device, SUPPORT_UP),
    "pre-add": (preadd, DEVELOPER_UP),
    "import": (import_file, DEVELOPER_UP),
    "remove": (remove_device, DEVELOPER_UP),
    "set owner": (set_owner, DEVELOPER_UP),
    "set policy": (static("PUT", f"/v1/products/{P}", {"policy": "quarantine"}), ADMINISTRATOR_UP),
    "team add": (static("POST", f"/v1/products/{P}/team", {"username": "spare", "role": "support"}), ADMINISTRATOR_UP),
    "team remove": (team_remove, ADMINISTRATOR_UP),
    "create customer": (create_customer, ADMINISTRATOR_UP),
    "provision key": (provision, {"admin"}),
    "create user": (create_user, {"admin"}),
    # A webhook's configuration holds its target's credentials: developers and up only.
    "list webhooks": (static("GET", f"/v1/products/{P}/webhooks"), DEVELOPER_UP),
    "create webhook": (static("POST", f"/v1/products/{P}/webhooks", WEBHOOK), DEVELOPER_UP),
    "delete webhook": (delete_webhook, DEVELOPER_UP),
    "create product": (create_product, USERS),
    "list products": (static("GET", "/v1/products"), USERS),
    "whoami": (static("GET", "/v1/user"), EVERYONE),
    "list tokens": (static("GET", "/v1/access_tokens"), EVERYONE),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", list(CASES))
async def test_authorization_matrix(world: World, endpoint: str, role: str) -> None:
    prepare, allowed = CASES[endpoint]
    async with client(world.base_url) as http:
        method, path, kwargs = await prepare(http, world.admin)
        headers = bearer(world.tokens[role]) if role != "anonymous" else {}
        headers |= kwargs.pop("headers", {})  # type: ignore[call-overload]
        response = await http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
    expected = "allowed" if role in allowed else ("401" if role == "anonymous" else "403")
    got = "allowed" if response.status_code < 300 else str(response.status_code)
    assert got == expected, (endpoint, role, response.status_code, response.text)
    if got != "allowed":
        body = response.json()
        assert body["error"] and ("error_description" in body or "field" in body)


def test_the_matrix_is_not_all_or_nothing() -> None:
    """Every role is denied somewhere and allowed somewhere: the table is not trivially all-or-nothing."""
    for role in ROLES[:-1]:
        assert any(role in allowed for _, allowed in CASES.values())
        assert role == "admin" or any(role not in allowed for _, allowed in CASES.values())
