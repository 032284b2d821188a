"""Rollouts over HTTP: create, list, show, per-device pages, pause/resume/abort, every bad request
answered by a 4xx naming the field, and who may do what.

No device connects here, so the scheduler running inside the server offers nothing: every row
stays pending and the states seen are the ones the requests made.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from firmware_sim import firmware
from server.api.models_rollouts import RolloutDeviceOut, RolloutOut, StageCountsOut
from server.ops.rollouts import MAX_STAGES
from server.rules.rollout_model import DeviceState

from .conftest import PASSWORD, Api, bearer, client
from .shared import server_in_thread

P = 4301
Q = 4302  # another product
DEVICES = [f"{i:02x}" * 12 for i in range(0x10, 0x16)]  # in the product; sorted
DEV_BOARD = DEVICES[4]  # development: never updated by a rollout
LOCKED_OLD = DEVICES[5]  # locked to version 1: a lock wins over a rollout
LOCKED_SAME = DEVICES[3]  # locked to version 2: the rollout's version, so it stays in
MOVABLE = DEVICES[:4]
OUTSIDER = "ab" * 12  # a member of Q
ROLLOUTS = f"/v1/products/{P}/rollouts"
STATES = {s.value for s in DeviceState}


def upload(version: int, product: int = P) -> tuple[str, str, dict[str, Any]]:
    files = {"binary": ("fw.bin", firmware.build(product, version, 3000), "application/octet-stream")}
    form = {"version": str(version), "title": f"v{version}"}
    return "POST", f"/v1/products/{product}/firmware", {"data": form, "files": files}


def put_device(device: str, body: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return "PUT", f"/v1/products/{P}/devices/{device}", {"json": body}


# The world every test starts from, as requests (made by the async Api or by the shared server's client).
WORLD: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/products", {"json": {"name": "Lamp", "id": P, "policy": "quarantine"}}),
    ("POST", "/v1/products", {"json": {"name": "Other", "id": Q, "policy": "quarantine"}}),
    *[("POST", f"/v1/products/{P}/devices", {"json": {"id": device}}) for device in DEVICES],
    ("POST", f"/v1/products/{Q}/devices", {"json": {"id": OUTSIDER}}),
    upload(1),
    upload(2),
    upload(3),
    upload(2, Q),
    *[("POST", f"/v1/products/{P}/groups", {"json": {"name": name}}) for name in ("beta", "bench", "empty")],
    put_device(DEVICES[0], {"groups": ["beta"]}),
    put_device(DEVICES[1], {"groups": ["beta"]}),
    put_device(DEV_BOARD, {"groups": ["beta", "bench"], "development": True}),
    put_device(LOCKED_OLD, {"groups": ["bench"], "desired_firmware_version": 1}),
    put_device(LOCKED_SAME, {"desired_firmware_version": 2}),
]


class Caller(Protocol):
    async def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response: ...

    async def ok(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any: ...


@pytest.fixture
async def world(api: Api) -> Api:
    for method, path, kwargs in WORLD:
        await api.ok(method, path, **kwargs)
    return api


@dataclass
class SharedApi:
    """The same calls as Api, against the module's shared server (whose world tests leave as they found it)."""

    http: httpx.AsyncClient
    admin_token: str

    async def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=bearer(token or self.admin_token), **kwargs)

    async def ok(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        response = await self.call(method, path, token, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data_dir: Path = tmp_path_factory.mktemp("rollouts") / "data"
    with server_in_thread(data_dir) as (base_url, admin_token):
        with httpx.Client(base_url=base_url, headers=bearer(admin_token), timeout=10) as http:
            for method, path, kwargs in WORLD:
                response = http.request(method, path, **kwargs)
                assert response.status_code < 300, (path, response.text)
        yield base_url, admin_token


@pytest.fixture
async def shared(shared_server: tuple[str, str]) -> AsyncIterator[SharedApi]:
    base_url, admin_token = shared_server
    async with client(base_url) as http:
        yield SharedApi(http, admin_token)
        listing = (await http.get(ROLLOUTS, headers=bearer(admin_token))).json()["rollouts"]
        assert all(r["state"] in ("aborted", "completed", "rolled_back") for r in listing), "left a rollout active"


TARGETS = ("product_default", "groups", "devices")


async def create(api: Caller, token: str | None = None, product: int = P, **body: Any) -> httpx.Response:
    return await api.call("POST", f"/v1/products/{product}/rollouts", token, json={"version": 2, **body})


async def created(api: Caller, **body: Any) -> dict[str, Any]:
    """A new rollout (of every device in the product unless the body names a target)."""
    if not any(key in body for key in TARGETS):
        body["product_default"] = True
    response = await create(api, **body)
    assert response.status_code == 201, response.text
    rollout: dict[str, Any] = response.json()["rollout"]
    return rollout


@asynccontextmanager
async def running(api: Caller, **body: Any) -> AsyncIterator[dict[str, Any]]:
    """A rollout aborted on the way out, so the shared server's product is free for the next test."""
    rollout = await created(api, **body)
    try:
        yield rollout
    finally:
        await api.ok("POST", f"{ROLLOUTS}/{rollout['id']}/abort")


async def act(api: Caller, rollout_id: int, action: str, token: str | None = None) -> httpx.Response:
    return await api.call("POST", f"{ROLLOUTS}/{rollout_id}/{action}", token)


async def device_ids(api: Caller, rollout_id: int) -> list[str]:
    body = await api.ok("GET", f"{ROLLOUTS}/{rollout_id}/devices")
    return [d["id"] for d in body["devices"]]


def counts(**states: int) -> dict[str, int]:
    return {s: states.get(s, 0) for s in STATES}


# ---------------------------------------------------------------------- create, list, show


async def test_create_answers_the_whole_rollout(world: Api) -> None:
    response = await create(
        world,
        product_default=True,
        strategy="staged",
        stages=[1, "50%"],
        max_concurrent=3,
        retries=1,
        device_timeout=120,
        retry_delay=2.5,
        success_threshold=0.5,
        error_threshold=0.25,
        error_action="rollback",
    )
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"rollout"}
    rollout = response.json()["rollout"]
    assert set(rollout) == set(RolloutOut.model_fields)
    assert RolloutOut.model_validate(rollout)
    assert rollout["id"] >= 1 and rollout["product_id"] == P and rollout["version"] == 2
    assert rollout["state"] == "running" and rollout["state_reason"] == "started"
    assert rollout["target"] == {"product_default": True, "groups": [], "devices": 4}
    assert rollout["strategy"] == "staged" and rollout["stages"] == [1, 2, 4] and rollout["current_stage"] == 0
    assert (rollout["max_concurrent"], rollout["retries"], rollout["device_timeout"]) == (3, 1, 120.0)
    assert (rollout["retry_delay"], rollout["success_threshold"], rollout["error_threshold"]) == (2.5, 0.5, 0.25)
    assert rollout["error_action"] == "rollback" and rollout["error_action_fired"] is False
    assert (rollout["rate_start"], rollout["rate_factor"], rollout["rate_increase_every"]) == (10.0, 2.0, 10)
    assert rollout["counts"] == counts(pending=4)
    assert [set(s) for s in rollout["stage_counts"]] == [set(StageCountsOut.model_fields)] * 3
    assert [(s["stage"], s["size"], s["counts"]) for s in rollout["stage_counts"]] == [
        (0, 1, counts(pending=1)),
        (1, 1, counts(pending=1)),
        (2, 2, counts(pending=2)),
    ]
    assert rollout["created_by"] == "user:admin"
    assert rollout["created_at"].endswith("Z") and rollout["updated_at"].endswith("Z")
    assert rollout["finished_at"] is None

    audit = (await world.ok("GET", f"/v1/products/{P}/audit"))["audit"]
    entry = [a for a in audit if a["action"] == "rollout_created"][-1]
    assert entry["detail"]["rollout"] == rollout["id"] and entry["detail"]["stages"] == [1, 2, 4]


@pytest.mark.parametrize(
    ("body", "stages"),
    [
        ({}, [4]),
        ({"strategy": "all"}, [4]),
        ({"strategy": "exponential", "rate_start": 0.5, "rate_factor": 1.5, "rate_increase_every": 3}, [4]),
        ({"strategy": "staged"}, [4]),
        ({"strategy": "staged", "stages": ["25%"]}, [1, 4]),
        ({"strategy": "staged", "stages": [2, 4]}, [2, 4]),
        ({"strategy": "staged", "stages": [99]}, [4]),
    ],
)
async def test_strategies_and_their_stages(shared: SharedApi, body: dict[str, Any], stages: list[int]) -> None:
    async with running(shared, **body) as rollout:
        pass
    assert rollout["strategy"] == body.get("strategy", "all") and rollout["stages"] == stages
    assert sum(s["size"] for s in rollout["stage_counts"]) == 4
    if body.get("strategy") == "exponential":
        assert (rollout["rate_start"], rollout["rate_factor"], rollout["rate_increase_every"]) == (0.5, 1.5, 3)


async def test_list_and_get(world: Api) -> None:
    assert await world.ok("GET", ROLLOUTS) == {"rollouts": []}
    first = await created(world)
    await world.ok("POST", f"{ROLLOUTS}/{first['id']}/abort")
    second = await created(world, groups=["beta"], strategy="staged", stages=["50%"])
    listing = (await world.ok("GET", ROLLOUTS))["rollouts"]
    assert [r["id"] for r in listing] == [second["id"], first["id"]]  # newest first
    assert listing[1]["state"] == "aborted" and listing[1]["finished_at"] is not None
    assert listing[0]["target"] == {"product_default": False, "groups": ["beta"], "devices": 2}
    got = (await world.ok("GET", f"{ROLLOUTS}/{second['id']}"))["rollout"]
    assert got["id"] == second["id"] and got["stages"] == second["stages"] == [1, 2]
    assert got["counts"] == second["counts"] and got["created_at"] == second["created_at"]
    assert (await world.ok("GET", "/v1/products/lamp/rollouts"))["rollouts"] == listing  # by slug too
    assert (await world.ok("GET", f"/v1/products/{Q}/rollouts")) == {"rollouts": []}  # per product


async def test_devices_pages(world: Api) -> None:
    rollout = await created(world, strategy="staged", stages=[1, 3])
    body = await world.ok("GET", f"{ROLLOUTS}/{rollout['id']}/devices")
    assert body["meta"] == {"total_pages": 1}
    devices = body["devices"]
    assert [d["id"] for d in devices] == MOVABLE  # in offer order (by device ID for a product target)
    assert [set(d) for d in devices] == [set(RolloutDeviceOut.model_fields)] * 4
    assert [d["stage"] for d in devices] == [0, 1, 1, 2]
    for d in devices:
        assert (d["phase"], d["state"], d["attempts"], d["from_version"]) == ("update", "pending", 0, None)
        assert d["updated_at"].endswith("Z")

    seen: list[str] = []
    for per_page in (1, 3, 4, 100):
        pages = math.ceil(4 / per_page)
        for page in range(1, pages + 2):
            body = await world.ok("GET", f"{ROLLOUTS}/{rollout['id']}/devices?per_page={per_page}&page={page}")
            assert body["meta"] == {"total_pages": pages}, (per_page, page)
            if page > pages:
                assert body["devices"] == []
            seen += [d["id"] for d in body["devices"]]
        assert seen == MOVABLE, per_page
        seen = []
    for query in ("page=0", "per_page=0", "per_page=101", "page=x"):
        response = await world.call("GET", f"{ROLLOUTS}/{rollout['id']}/devices?{query}")
        assert response.status_code == 400, (query, response.text)
        assert response.json()["field"] == query.split("=")[0]


# ---------------------------------------------------------------------- who is in a rollout


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"product_default": True}, MOVABLE),
        ({"groups": ["beta"]}, DEVICES[:2]),  # not the development board in beta
        ({"groups": ["beta", "bench"]}, DEVICES[:2]),  # nor the device locked to version 1
        ({"devices": [DEVICES[3], DEVICES[0]]}, [DEVICES[3], DEVICES[0]]),  # as given
        ({"devices": [DEVICES[2], DEVICES[2].upper(), DEVICES[1]]}, [DEVICES[2], DEVICES[1]]),
        ({"devices": [DEVICES[0], DEV_BOARD, LOCKED_OLD]}, [DEVICES[0]]),
    ],
)
async def test_development_and_locked_devices_are_left_out(
    shared: SharedApi, target: dict[str, Any], expected: list[str]
) -> None:
    async with running(shared, **target) as rollout:
        assert rollout["target"]["devices"] == len(expected)
        assert await device_ids(shared, rollout["id"]) == expected


@pytest.mark.parametrize(
    "target",
    [
        {"groups": ["bench"]},  # a development board and a device locked elsewhere
        {"groups": ["empty"]},
        {"devices": [DEV_BOARD]},
        {"devices": [LOCKED_OLD, DEV_BOARD]},
    ],
)
async def test_a_target_with_no_movable_device_is_refused(shared: SharedApi, target: dict[str, Any]) -> None:
    before = await shared.ok("GET", ROLLOUTS)
    response = await create(shared, **target)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "target"
    assert await shared.ok("GET", ROLLOUTS) == before


async def test_a_lock_to_another_version_is_left_out_for_that_version_only(shared: SharedApi) -> None:
    async with running(shared, version=1) as rollout:  # LOCKED_OLD is locked to 1; LOCKED_SAME to 2
        assert await device_ids(shared, rollout["id"]) == [*DEVICES[:3], LOCKED_OLD]


# ---------------------------------------------------------------------- transitions


async def test_pause_resume_abort(world: Api) -> None:
    rollout = await created(world)
    rid = rollout["id"]

    async def expect(action: str, status: int, state: str) -> dict[str, Any]:
        response = await act(world, rid, action)
        assert response.status_code == status, (action, response.text)
        if status == 409:
            assert response.json()["field"] == "rollout"
        current: dict[str, Any] = (await world.ok("GET", f"{ROLLOUTS}/{rid}"))["rollout"]
        assert current["state"] == state, action
        if status == 200:
            assert response.json()["rollout"]["state"] == state
        return current

    await expect("resume", 409, "running")  # only a paused one resumes
    paused = await expect("pause", 200, "paused")
    assert paused["state_reason"] == "pause by user:admin"
    await expect("pause", 409, "paused")
    await expect("resume", 200, "running")
    await expect("resume", 409, "running")
    await expect("pause", 200, "paused")
    aborted = await expect("abort", 200, "aborted")  # a paused one may be aborted
    assert aborted["finished_at"] is not None and aborted["counts"] == counts(skipped=4)
    for action in ("pause", "resume", "abort"):
        await expect(action, 409, "aborted")  # nothing moves a finished rollout
    rows = (await world.ok("GET", f"{ROLLOUTS}/{rid}/devices"))["devices"]
    assert {(d["state"], d["reason"].startswith("rollout aborted")) for d in rows} == {("skipped", True)}

    actions = [a["action"] for a in (await world.ok("GET", f"/v1/products/{P}/audit"))["audit"]]
    rollout_actions = [a for a in actions if a.startswith("rollout_")]
    assert rollout_actions == [
        "rollout_created", "rollout_pause", "rollout_resume", "rollout_pause", "rollout_abort",
    ]  # fmt: skip


async def test_abort_a_running_rollout(shared: SharedApi) -> None:
    rollout = await created(shared)
    response = await act(shared, rollout["id"], "abort")
    assert response.status_code == 200, response.text
    assert response.json()["rollout"]["state"] == "aborted"


async def test_one_active_rollout_per_product(world: Api) -> None:
    first = await created(world)
    for body in ({"product_default": True}, {"groups": ["beta"], "version": 3}):
        second = await create(world, **body)
        assert second.status_code == 409, second.text
        assert second.json()["field"] == "rollout" and str(first["id"]) in second.json()["error"]
    await world.ok("POST", f"{ROLLOUTS}/{first['id']}/pause")
    assert (await create(world, product_default=True)).status_code == 409  # paused is still active
    other = await create(world, product=Q, product_default=True)
    assert other.status_code == 201, other.text  # another product is not affected
    await world.ok("POST", f"{ROLLOUTS}/{first['id']}/abort")
    assert (await create(world, product_default=True)).status_code == 201


# ---------------------------------------------------------------------- bad requests


T: dict[str, Any] = {"product_default": True}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "target"),  # no target
        ({"product_default": False}, 400, "target"),
        ({"product_default": True, "groups": ["beta"]}, 400, "target"),
        ({"product_default": True, "devices": [DEVICES[0]]}, 400, "target"),
        ({"groups": ["beta"], "devices": [DEVICES[0]]}, 400, "target"),
        ({"groups": ["nope"]}, 400, "groups"),
        ({"groups": ["beta", "nope"]}, 400, "groups"),
        ({"groups": ["Not A Name"]}, 400, "groups"),
        ({"groups": "beta"}, 400, "groups"),
        ({"devices": [OUTSIDER]}, 400, "devices"),  # a member of another product
        ({"devices": [DEVICES[0], "cd" * 12]}, 400, "devices"),  # unknown anywhere
        ({"devices": DEVICES[0]}, 400, "devices"),
        ({"product_default": "yes"}, 400, "product_default"),
        ({**T, "version": 99}, 404, "version"),
        ({**T, "version": 0}, 400, "version"),
        ({**T, "version": 70000}, 400, "version"),
        ({**T, "version": "2"}, 400, "version"),
        ({**T, "version": None}, 400, "version"),
        ({**T, "strategy": "sometimes"}, 400, "strategy"),
        ({**T, "error_action": "explode"}, 400, "error_action"),
        ({**T, "stages": [1, 2]}, 400, "stages"),  # stages go with strategy staged
        ({**T, "strategy": "exponential", "stages": ["50%"]}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": [2, 2]}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": [3, 1]}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": ["0%"]}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": ["150%"]}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": ["half"]}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": [0]}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": [1.5]}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": [True]}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": "50%"}, 400, "stages"),
        ({**T, "strategy": "staged", "stages": list(range(1, MAX_STAGES + 2))}, 400, "stages"),
        ({**T, "success_threshold": 1.5}, 400, "success_threshold"),
        ({**T, "success_threshold": -0.1}, 400, "success_threshold"),
        ({**T, "error_threshold": 0}, 400, "error_threshold"),
        ({**T, "error_threshold": 0.0}, 400, "error_threshold"),
        ({**T, "error_threshold": 1.01}, 400, "error_threshold"),
        ({**T, "error_threshold": -1}, 400, "error_threshold"),
        ({**T, "error_threshold": "0.1"}, 400, "error_threshold"),
        ({**T, "max_concurrent": 0}, 400, "max_concurrent"),
        ({**T, "max_concurrent": 1.5}, 400, "max_concurrent"),
        ({**T, "retries": -1}, 400, "retries"),
        ({**T, "retries": 101}, 400, "retries"),
        ({**T, "device_timeout": 0}, 400, "device_timeout"),
        ({**T, "retry_delay": -1}, 400, "retry_delay"),
        ({**T, "strategy": "exponential", "rate_start": 0}, 400, "rate_start"),
        ({**T, "strategy": "exponential", "rate_factor": 0.5}, 400, "rate_factor"),
        ({**T, "strategy": "exponential", "rate_increase_every": 0}, 400, "rate_increase_every"),
        ({**T, "colour": "red"}, 400, "colour"),
    ],
)
async def test_bad_requests_name_the_field(shared: SharedApi, body: dict[str, Any], status: int, field: str) -> None:
    before = await shared.ok("GET", ROLLOUTS)
    response = await shared.call("POST", ROLLOUTS, json={"version": 2, **body})
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["field"] is not None and answer["field"].split(".")[0] == field, answer
    assert await shared.ok("GET", ROLLOUTS) == before  # nothing was created


async def test_a_malformed_device_id_names_the_devices_field(shared: SharedApi) -> None:
    response = await create(shared, devices=[DEVICES[0], "not-a-device"])
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "devices"


async def test_unknown_rollouts_and_products(world: Api) -> None:
    rollout = await created(world)
    rid = rollout["id"]
    for method, path in [
        ("GET", f"{ROLLOUTS}/{rid + 1}"),
        ("GET", f"{ROLLOUTS}/{rid + 1}/devices"),
        ("POST", f"{ROLLOUTS}/{rid + 1}/pause"),
        ("POST", f"{ROLLOUTS}/{rid + 1}/resume"),
        ("POST", f"{ROLLOUTS}/{rid + 1}/abort"),
        ("GET", f"/v1/products/{Q}/rollouts/{rid}"),  # it belongs to P
        ("POST", f"/v1/products/{Q}/rollouts/{rid}/abort"),
    ]:
        response = await world.call(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["field"] == "rollout", (method, path)
    for method, path in [
        ("GET", "/v1/products/9999/rollouts"),
        ("POST", "/v1/products/9999/rollouts"),
        ("GET", f"/v1/products/9999/rollouts/{rid}"),
        ("GET", f"/v1/products/nosuch/rollouts/{rid}/devices"),
        ("POST", f"/v1/products/9999/rollouts/{rid}/pause"),
    ]:
        kwargs: dict[str, Any] = {"json": {"version": 2, "product_default": True}} if method == "POST" else {}
        response = await world.call(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    for bad in ("0", "-1", "x", str(2**62 + 1)):
        response = await world.call("GET", f"{ROLLOUTS}/{bad}")
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["field"] == "rollout_id"
    assert (await world.ok("GET", f"{ROLLOUTS}/{rid}"))["rollout"]["state"] == "running"  # untouched


# ---------------------------------------------------------------------- who may do what


async def test_who_may_do_what(world: Api) -> None:
    api = world
    tokens: dict[str, str] = {}
    for role in ("view_only", "support", "developer", "administrator"):
        tokens[role] = await api.user(role)
        await api.ok("POST", f"/v1/products/{P}/team", json={"username": role, "role": role})
    tokens["outsider"] = await api.user("outsider")
    await api.ok("POST", f"/v1/products/{P}/customers", json={"username": "cara", "password": PASSWORD})
    tokens["customer"] = (await api.login("cara", product=str(P)))["access_token"]
    rid = (await created(api))["id"]
    readers = {"view_only", "support", "developer", "administrator"}

    reads = [ROLLOUTS, f"{ROLLOUTS}/{rid}", f"{ROLLOUTS}/{rid}/devices"]
    for path in reads:
        for role, token in tokens.items():
            response = await api.call("GET", path, token)
            assert response.status_code == (200 if role in readers else 403), (path, role, response.text)
        anonymous = await api.http.get(path)
        assert anonymous.status_code == 401, (path, anonymous.text)

    writes = [
        (ROLLOUTS, {"version": 3, "product_default": True}),
        (f"{ROLLOUTS}/{rid}/pause", None),
        (f"{ROLLOUTS}/{rid}/resume", None),
        (f"{ROLLOUTS}/{rid}/abort", None),
    ]
    for path, body in writes:
        for role in ("view_only", "support", "outsider", "customer"):
            response = await api.call("POST", path, tokens[role], json=body)
            assert response.status_code == 403, (path, role, response.text)
        anonymous = await api.http.post(path, json=body)
        assert anonymous.status_code == 401, (path, anonymous.text)
    assert (await api.ok("GET", f"{ROLLOUTS}/{rid}"))["rollout"]["state"] == "running"
    assert len((await api.ok("GET", ROLLOUTS))["rollouts"]) == 1

    dev = tokens["developer"]
    for action, state in (("pause", "paused"), ("resume", "running"), ("abort", "aborted")):
        response = await act(api, rid, action, dev)
        assert response.status_code == 200 and response.json()["rollout"]["state"] == state, response.text
    response = await create(api, dev, product_default=True, version=3)
    assert response.status_code == 201, response.text
    assert response.json()["rollout"]["created_by"] == "user:developer"
    assert (await act(api, response.json()["rollout"]["id"], "abort", tokens["administrator"])).status_code == 200


async def test_scopes_narrow_rollout_tokens(world: Api) -> None:
    await world.user("dev")
    await world.ok("POST", f"/v1/products/{P}/team", json={"username": "dev", "role": "developer"})
    reader = (await world.login("dev", scope="firmware:read"))["access_token"]
    assert (await world.call("GET", ROLLOUTS, reader)).status_code == 200
    refused = await create(world, reader, product_default=True)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    writer = (await world.login("dev", scope="firmware:write"))["access_token"]
    assert (await create(world, writer, product_default=True)).status_code == 201
    assert (await world.call("GET", ROLLOUTS, writer)).status_code == 403  # reading needs firmware:read
