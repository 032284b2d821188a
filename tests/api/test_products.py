"""Products, users, team, customers and the audit trail: happy paths and the errors around them."""

from __future__ import annotations

import pytest

from .conftest import PASSWORD, Api


async def test_create_show_update_and_list_products(api: Api) -> None:
    created = await api.call("POST", "/v1/products", json={"name": "Widget Pro", "id": 31, "policy": "auto_approve"})
    assert created.status_code == 201
    product = created.json()["product"]
    assert product["id"] == 31 and product["slug"] == "widget-pro" and product["policy"] == "auto_approve"
    assert product["created_at"].endswith("Z")
    assert product["device_counts"] == {"approved": 0, "quarantined": 0, "denied": 0}

    by_slug = await api.ok("GET", "/v1/products/widget-pro")
    assert by_slug["product"]["id"] == 31
    updated = await api.ok("PUT", "/v1/products/31", json={"policy": "preadd_only", "name": "Widget 2"})
    assert updated["product"]["policy"] == "preadd_only" and updated["product"]["name"] == "Widget 2"
    assert updated["product"]["slug"] == "widget-pro"

    auto = await api.ok("POST", "/v1/products", json={"name": "Gadget", "slug": "gg"})
    assert auto["product"]["policy"] == "quarantine" and auto["product"]["slug"] == "gg"
    listing = await api.ok("GET", "/v1/products")
    assert [p["id"] for p in listing["products"]] == [31, auto["product"]["id"]]
    assert all(p["device_counts"] is None for p in listing["products"])


async def test_the_creator_administers_and_users_see_only_their_products(api: Api) -> None:
    await api.product("Admin's", 40)
    maker = await api.user("maker")
    made = await api.ok("POST", "/v1/products", maker, json={"name": "Maker's"})  # users get the next free ID
    pid = made["product"]["id"]
    assert (await api.ok("GET", f"/v1/products/{pid}/team", maker))["team"] == [
        {"username": "maker", "role": "administrator"}
    ]
    assert [p["id"] for p in (await api.ok("GET", "/v1/products", maker))["products"]] == [pid]
    me = await api.ok("GET", "/v1/user", maker)
    assert me["products"] == [{"id": pid, "slug": "maker-s", "name": "Maker's", "role": "administrator"}]
    assert {p["id"] for p in (await api.ok("GET", "/v1/products"))["products"]} == {40, pid}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": "quarantine"}, "name"),
        ({"name": "x", "policy": "bogus"}, "policy"),
        ({"name": "x", "id": 0}, "id"),
        ({"name": "x", "id": "12"}, "id"),
        ({"name": "x", "slug": "Not A Slug"}, "slug"),
        ({"name": "   "}, "name"),
        ({"name": "x", "colour": "red"}, "colour"),
        ([1, 2], "body"),
    ],
)
async def test_malformed_product_bodies_name_the_field(api: Api, body: object, field: str) -> None:
    response = await api.call("POST", "/v1/products", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


async def test_non_json_and_duplicate_products(api: Api) -> None:
    garbage = await api.call("POST", "/v1/products", content=b"{nope", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400 and garbage.json()["field"] == "body"
    plain = await api.call("PUT", "/v1/products/1", content=b"name=x")
    assert plain.status_code in (400, 404)
    await api.product("Widget", 50)
    duplicate = await api.call("POST", "/v1/products", json={"name": "Other", "id": 50})
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["error"]
    bad_policy = await api.call("PUT", "/v1/products/50", json={"policy": "allow_all"})
    assert bad_policy.status_code == 400 and bad_policy.json()["field"] == "policy"
    not_json = await api.call("PUT", "/v1/products/50", content=b"policy=x")
    assert not_json.status_code == 400 and not_json.json()["field"] == "body"


@pytest.mark.parametrize("key", ["999", "no-such-product", "²", "9" * 40, "Widget!", "-1"])
async def test_unknown_products_are_404_with_json(api: Api, key: str) -> None:
    for method, path in [("GET", f"/v1/products/{key}"), ("GET", f"/v1/products/{key}/devices")]:
        response = await api.call(method, path)
        assert response.status_code == 404, (path, response.text)
        assert "not found" in response.json()["error"]


async def test_users_are_created_by_admins_without_exposing_hashes(api: Api) -> None:
    created = await api.call("POST", "/v1/users", json={"username": "ops@example.com", "password": PASSWORD})
    assert created.status_code == 201
    user = created.json()["user"]
    assert set(user) == {"id", "username", "admin", "created_at"} and user["admin"] is False
    assert (await api.call("POST", "/v1/users", json={"username": "ops@example.com", "password": PASSWORD})).json()[
        "field"
    ] == "username"
    for body, field in [
        ({"username": "x", "password": "short"}, "password"),
        ({"username": "bad name", "password": PASSWORD}, "username"),
        ({"username": "y", "password": PASSWORD, "admin": "yes"}, "admin"),
        ({"password": PASSWORD}, "username"),
    ]:
        response = await api.call("POST", "/v1/users", json=body)
        assert response.status_code == 400 and response.json()["field"] == field, body


async def test_team_members_come_and_go_but_the_last_administrator_stays(api: Api) -> None:
    await api.product("Widget", 60)
    await api.user("sam")
    added = await api.call("POST", "/v1/products/60/team", json={"username": "sam", "role": "support"})
    assert added.status_code == 201 and added.json() == {"member": {"username": "sam", "role": "support"}}
    team = (await api.ok("GET", "/v1/products/60/team"))["team"]
    assert team == [{"username": "admin", "role": "administrator"}, {"username": "sam", "role": "support"}]
    assert (await api.ok("DELETE", "/v1/products/60/team/sam")) == {"ok": True}
    gone = await api.call("DELETE", "/v1/products/60/team/sam")
    assert gone.status_code == 404 and gone.json()["field"] == "username"

    last = await api.call("DELETE", "/v1/products/60/team/admin")
    assert last.status_code == 409 and last.json()["field"] == "username"
    demoted = await api.call("POST", "/v1/products/60/team", json={"username": "admin", "role": "developer"})
    assert demoted.status_code == 409 and demoted.json()["field"] == "role"

    unknown = await api.call("POST", "/v1/products/60/team", json={"username": "ghost", "role": "support"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "username"
    bad_role = await api.call("POST", "/v1/products/60/team", json={"username": "sam", "role": "owner"})
    assert bad_role.status_code == 400 and bad_role.json()["field"] == "role"


async def test_customers(api: Api) -> None:
    await api.product("Widget", 70)
    created = await api.call("POST", "/v1/products/70/customers", json={"username": "cus", "password": PASSWORD})
    assert created.status_code == 201
    customer = created.json()["customer"]
    assert customer["username"] == "cus" and set(customer) == {"id", "username", "created_at"}
    assert (await api.ok("GET", "/v1/products/70/customers"))["customers"] == [customer]
    again = await api.call("POST", "/v1/products/70/customers", json={"username": "cus", "password": PASSWORD})
    assert again.status_code == 409 and again.json()["field"] == "username"


async def test_audit_trail_names_actors_and_pages(api: Api) -> None:
    await api.product("Widget", 80)
    operator = await api.user("operator")
    await api.ok("POST", "/v1/products/80/team", json={"username": "operator", "role": "administrator"})
    await api.ok("PUT", "/v1/products/80", operator, json={"policy": "auto_approve"})
    audit = (await api.ok("GET", "/v1/products/80/audit"))["audit"]
    assert [(e["actor"], e["action"]) for e in audit] == [
        ("user:admin", "product_created"),
        ("user:admin", "team_member_set"),
        ("user:admin", "team_member_set"),
        ("user:operator", "policy_changed"),
    ]
    assert audit[-1]["detail"] == {"from": "quarantine", "to": "auto_approve"} and audit[-1]["at"].endswith("Z")
    page = (await api.ok("GET", "/v1/products/80/audit", params={"after": audit[1]["id"], "limit": 1}))["audit"]
    assert [e["id"] for e in page] == [audit[2]["id"]]
    too_many = await api.call("GET", "/v1/products/80/audit", params={"limit": 5000})
    assert too_many.status_code == 400 and too_many.json()["field"] == "limit"
