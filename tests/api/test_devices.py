"""A product's devices over the API: listing, edits, approve / pre-add / import, deny / remove, owners."""

from __future__ import annotations

import secrets

import pytest

from .conftest import PASSWORD, Api

P, Q = 101, 102


def new_id() -> str:
    return secrets.token_hex(12)


async def preadd(api: Api, product: int, device: str, token: str | None = None) -> dict[str, object]:
    body: dict[str, object] = await api.ok("POST", f"/v1/products/{product}/devices", token, json={"id": device})
    return body


async def test_preadd_list_show_and_edit(api: Api) -> None:
    await api.product("Widget", P)
    devices = [new_id() for _ in range(3)]
    for device in devices:
        report = await preadd(api, P, device.upper())  # IDs are accepted in either case
        assert report == {
            "updated": 1,
            "updatedDeviceIds": [device],
            "existingDeviceIds": [],
            "nonmemberDeviceIds": [],
            "invalidDeviceIds": [],
            "action": "preadded",
        }
    assert (await preadd(api, P, devices[0]))["existingDeviceIds"] == [devices[0]]

    page = await api.ok("GET", f"/v1/products/{P}/devices", params={"per_page": 2, "page": 2})
    assert page["meta"] == {"total_pages": 2} and [d["id"] for d in page["devices"]] == devices[2:]
    shown = await api.ok("GET", f"/v1/products/{P}/devices/{devices[0]}")
    assert shown == {
        "id": devices[0],
        "name": None,
        "product_id": P,
        "platform_id": None,
        "firmware_version": None,
        "online": False,
        "connected": False,
        "last_heard": None,
        "last_handshake_at": None,
        "quarantined": False,
        "denied": False,
        "development": False,
        "groups": [],
        "notes": None,
        "owner": None,
        "firmware_product_id": None,
        "mismatch": False,
        "desired_firmware_version": None,
        "targeted_firmware_release_version": None,
        "firmware_target_reason": "no release applies",
        "firmware_update_pending": False,
    }
    edited = await api.ok(
        "PUT", f"/v1/products/{P}/devices/{devices[0]}", json={"name": "kitchen", "notes": "n", "development": True}
    )
    assert (edited["name"], edited["notes"], edited["development"]) == ("kitchen", "n", True)
    cleared = await api.ok("PUT", f"/v1/products/{P}/devices/{devices[0]}", json={"notes": None})
    assert cleared["notes"] is None and cleared["name"] == "kitchen"
    counts = (await api.ok("GET", f"/v1/products/{P}"))["product"]["device_counts"]
    assert counts == {"approved": 3, "quarantined": 0, "denied": 0}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "field"),
    [
        ("GET", f"/v1/products/{P}/devices/{'ab' * 12}", {}, 404, None),
        ("GET", f"/v1/products/{P}/devices/xyz", {}, 400, "id"),
        ("GET", f"/v1/products/{P}/devices", {"params": {"per_page": 101}}, 400, "per_page"),
        ("GET", f"/v1/products/{P}/devices", {"params": {"page": 0}}, 400, "page"),
        ("GET", f"/v1/products/{P}/devices", {"params": {"page": "two"}}, 400, "page"),
        ("GET", f"/v1/products/{P}/devices", {"params": {"status": "lost"}}, 400, "status"),
        ("POST", f"/v1/products/{P}/devices", {"json": {"id": "xyz"}}, 400, "id"),
        ("POST", f"/v1/products/{P}/devices", {"json": {"id": 12}}, 400, "id"),
        ("POST", f"/v1/products/{P}/devices", {"json": {"move": True}}, 400, "id"),
        ("POST", f"/v1/products/{P}/devices", {"json": {"id": "ab" * 12, "move": "yes"}}, 400, "move"),
        ("POST", f"/v1/products/{P}/devices", {}, 400, "body"),
        ("POST", f"/v1/products/{P}/devices", {"content": b"\xff\xfe"}, 400, "body"),
        ("POST", f"/v1/products/{P}/devices", {"files": {"other": ("x", b"y")}}, 400, "file"),
        ("POST", f"/v1/products/{P}/devices", {"files": {"file": ("x", b"\xff\xfe\xfd")}}, 400, "file"),
        ("PUT", f"/v1/products/{P}/devices/{'ab' * 12}", {"json": {"name": "x"}}, 404, None),
        ("PUT", f"/v1/products/{P}/devices/{'ab' * 12}", {"json": {"development": "yes"}}, 400, "development"),
        ("PUT", f"/v1/products/{P}/devices/{'ab' * 12}", {"json": {"name": "x" * 2000}}, 400, "name"),
        ("PUT", f"/v1/products/{P}/devices/{'ab' * 12}", {"json": {"flash": True}}, 400, "flash"),
        ("DELETE", f"/v1/products/{P}/devices/{'ab' * 12}", {}, 404, None),
        ("DELETE", f"/v1/products/{P}/devices/{'ab' * 12}", {"json": {"deny": 1}}, 400, "deny"),
        ("PUT", f"/v1/products/{P}/devices/{'ab' * 12}/owner", {"json": {"user": "admin"}}, 404, None),
    ],
)
async def test_device_requests_that_name_their_problem(
    api: Api, method: str, path: str, kwargs: dict[str, object], status: int, field: str | None
) -> None:
    await api.product("Widget", P)
    response = await api.call(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]
    if field is not None:
        assert body["field"] == field


async def test_a_device_of_another_product_moves_only_with_move(api: Api) -> None:
    await api.product("Widget", P)
    await api.product("Gadget", Q)
    device = new_id()
    await preadd(api, P, device)
    refused = await api.call("POST", f"/v1/products/{Q}/devices", json={"id": device})
    assert refused.status_code == 409 and refused.json()["field"] == "move"
    assert str(P) in refused.json()["error"]

    # A developer of Q who is not on P's team may not take P's device with move.
    dev = await api.user("qdev")
    await api.ok("POST", f"/v1/products/{Q}/team", json={"username": "qdev", "role": "developer"})
    taken = await api.call("POST", f"/v1/products/{Q}/devices", dev, json={"id": device, "move": True})
    assert taken.status_code == 403

    moved = await api.ok("POST", f"/v1/products/{Q}/devices", json={"id": device, "move": True})
    assert moved["updatedDeviceIds"] == [device]
    assert (await api.ok("GET", f"/v1/products/{Q}/devices/{device}"))["product_id"] == Q
    assert (await api.call("GET", f"/v1/products/{P}/devices/{device}")).status_code == 404
    audit = (await api.ok("GET", f"/v1/products/{Q}/audit"))["audit"]
    assert audit[-1]["action"] == "preadded" and audit[-1]["detail"]["moved_from_product"] == P


async def test_import_a_file_of_device_ids(api: Api) -> None:
    await api.product("Widget", P)
    await api.product("Gadget", Q)
    fresh, member, elsewhere = new_id(), new_id(), new_id()
    await preadd(api, P, member)
    await preadd(api, Q, elsewhere)
    content = f"device_id,notes\n# a comment\n{fresh},new\n{member},old\nnot-an-id\n\n{elsewhere}\n{'0' * 25}\n"
    response = await api.call(
        "POST", f"/v1/products/{P}/devices", files={"file": ("devices.csv", content.encode(), "text/csv")}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "updated": 1,
        "updatedDeviceIds": [fresh],
        "existingDeviceIds": [member],
        "nonmemberDeviceIds": [elsewhere],
        "invalidDeviceIds": ["not-an-id", "0" * 25],
        "action": None,  # only said for one device
    }
    too_many = "\n".join(new_id() for _ in range(10_001)).encode()
    big = await api.call("POST", f"/v1/products/{P}/devices", files={"file": ("ids.txt", too_many)})
    assert big.status_code == 400 and big.json()["field"] == "file"


async def test_deny_then_unlist_and_remove(api: Api) -> None:
    await api.product("Widget", P)
    a, b = new_id(), new_id()
    await preadd(api, P, a)
    await preadd(api, P, b)
    assert await api.ok("DELETE", f"/v1/products/{P}/devices/{a}", json={"deny": True}) == {
        "ok": True,
        "action": "denied",
    }
    denied = await api.ok("GET", f"/v1/products/{P}/devices", params={"status": "denied"})
    assert [(d["id"], d["denied"], d["product_id"]) for d in denied["devices"]] == [(a, True, P)]
    approved = await api.ok("GET", f"/v1/products/{P}/devices", params={"status": "approved"})
    assert [d["id"] for d in approved["devices"]] == [b]
    assert (await api.ok("DELETE", f"/v1/products/{P}/devices/{a}"))["action"] == "unlisted"
    assert (await api.ok("DELETE", f"/v1/products/{P}/devices/{b}"))["action"] == "removed"
    assert (await api.call("DELETE", f"/v1/products/{P}/devices/{b}")).status_code == 404
    assert (await api.ok("GET", f"/v1/products/{P}/devices"))["devices"] == []


async def test_owners(api: Api) -> None:
    await api.product("Widget", P)
    await api.product("Gadget", Q)
    await api.user("olga")
    await api.ok("POST", f"/v1/products/{P}/customers", json={"username": "cara", "password": PASSWORD})
    await api.ok("POST", f"/v1/products/{Q}/customers", json={"username": "quinn", "password": PASSWORD})
    device = new_id()
    await preadd(api, P, device)
    path = f"/v1/products/{P}/devices/{device}/owner"
    assert await api.ok("PUT", path, json={"user": "olga"}) == {"ok": True}
    assert (await api.ok("GET", f"/v1/products/{P}/devices/{device}"))["owner"] == "user:olga"
    await api.ok("PUT", path, json={"customer": "cara"})
    assert (await api.ok("GET", f"/v1/products/{P}/devices/{device}"))["owner"] == "customer:cara"
    for body, status, field in [
        ({"customer": "quinn"}, 404, "customer"),
        ({"user": "nobody"}, 404, "user"),
        ({"user": "olga", "customer": "cara"}, 400, "user"),
        ({}, 400, "user"),
    ]:
        response = await api.call("PUT", path, json=body)
        assert (response.status_code, response.json()["field"]) == (status, field), body
    assert await api.ok("DELETE", path) == {"ok": True}
    assert (await api.ok("GET", f"/v1/products/{P}/devices/{device}"))["owner"] is None


async def test_product_less_device_views(api: Api) -> None:
    await api.product("Widget", P)
    mine, theirs = new_id(), new_id()
    await preadd(api, P, mine)
    await preadd(api, P, theirs)
    viewer = await api.user("viewer")
    outsider = await api.user("outsider")
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "viewer", "role": "view_only"})
    await api.ok("PUT", f"/v1/products/{P}/devices/{mine}/owner", json={"user": "outsider"})

    assert {d["id"] for d in await api.ok("GET", "/v1/devices")} == {mine, theirs}
    assert {d["id"] for d in await api.ok("GET", "/v1/devices", viewer)} == {mine, theirs}
    assert [d["id"] for d in await api.ok("GET", "/v1/devices", outsider)] == [mine]
    assert (await api.ok("GET", f"/v1/devices/{mine}", outsider))["owner"] == "user:outsider"
    assert (await api.call("GET", f"/v1/devices/{theirs}", outsider)).status_code == 404
    assert (await api.call("GET", f"/v1/devices/{new_id()}")).status_code == 404


async def test_provisioning_keys(api: Api) -> None:
    device, key = new_id(), secrets.token_hex(32)
    created = await api.call("POST", f"/v1/provisioning/{device}", json={"public_key": key})
    assert created.status_code == 201 and created.json() == {"ok": True, "id": device}
    assert (await api.call("POST", f"/v1/provisioning/{device}", json={"public_key": key})).status_code == 201
    for path, body, status, field in [
        (f"/v1/provisioning/{device}", {"public_key": secrets.token_hex(32)}, 409, "public_key"),
        (f"/v1/provisioning/{device}", {"public_key": "abc"}, 400, "public_key"),
        ("/v1/provisioning/nope", {"public_key": key}, 400, "id"),
        (f"/v1/provisioning/{device}", {}, 400, "public_key"),
    ]:
        response = await api.call("POST", path, json=body)
        assert (response.status_code, response.json()["field"]) == (status, field), (path, body)

    good = [(new_id(), secrets.token_hex(32)) for _ in range(2)]
    batch = await api.ok(
        "POST",
        "/v1/provisioning",
        json={"devices": [{"id": i, "public_key": k} for i, k in good] + [{"id": "bad", "public_key": key}]},
    )
    assert batch["registered"] == [i for i, _ in good]
    assert [e["id"] for e in batch["errors"]] == ["bad"]

    csv = "device_id,public_key\n" + "".join(f"{i},{k}\n" for i, k in good[:1]) + f"{new_id()}\nzz,{key}\n"
    uploaded = await api.ok("POST", "/v1/provisioning", files={"file": ("keys.csv", csv.encode(), "text/csv")})
    assert uploaded["registered"] == [good[0][0]]
    first, second = uploaded["errors"]
    assert first["error"] == "expected two columns: device_id,public_key" and second["id"] == "zz"


async def test_a_file_of_private_keys_is_refused_whole(api: Api) -> None:
    """fleetsim keygen's identities.csv (device_id,private_key): nothing registered, the key never echoed."""
    device_id, private_key = new_id(), secrets.token_hex(32)
    content = f"device_id,private_key\n{device_id},{private_key}\n".encode()
    response = await api.call("POST", "/v1/provisioning", files={"file": ("identities.csv", content, "text/csv")})
    assert response.status_code == 400
    assert "private" in response.text and private_key not in response.text
    assert (await api.call("GET", f"/v1/devices/{device_id}")).status_code == 404
