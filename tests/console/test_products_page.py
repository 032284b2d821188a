"""The product picker's New product form: as POST /v1/products, the creator becomes its administrator,
only a server admin picks the ID, CSRF and Origin apply, and a bad entry answers the form again."""

from __future__ import annotations

from firmware_sim.identity import DeviceIdentity
from tests.api.conftest import Api

from .support import logged_in


async def test_a_server_admin_creates_a_product_with_its_id_and_lands_on_its_hub(api: Api) -> None:
    await api.user("root", admin=True)
    async with logged_in(api, "root") as browser:
        page = await browser.get("/console/")
        assert 'name="id"' in page.text  # an admin may choose the ID firmware compiles in
        made = await browser.post("/console/products", {"name": "Smart Lamp", "id": "4201", "policy": "quarantine"})
        assert made.status_code == 303 and made.headers["location"] == "/console/products/4201/devices"
        hub = await browser.get(made.headers["location"])
        assert hub.status_code == 200 and "Smart Lamp created with ID 4201" in hub.text
    product = (await api.ok("GET", "/v1/products/4201"))["product"]
    assert product["name"] == "Smart Lamp"
    team = await api.ok("GET", "/v1/products/4201/team")
    assert any(m["username"] == "root" and m["role"] == "administrator" for m in team["team"])


async def test_a_user_gets_the_next_free_id_and_may_not_choose_one(api: Api) -> None:
    await api.user("ada")
    async with logged_in(api, "ada") as browser:
        page = await browser.get("/console/")
        assert 'name="id"' not in page.text
        forged = await browser.post("/console/products", {"name": "Mine", "id": "4999"})
        assert forged.status_code == 400 and "only a server admin may choose a product ID" in forged.text
        made = await browser.post("/console/products", {"name": "Mine", "policy": "auto_approve"})
        assert made.status_code == 303
        product_id = int(made.headers["location"].split("/")[3])
    product = (await api.ok("GET", f"/v1/products/{product_id}"))["product"]
    assert product["name"] == "Mine" and product["policy"] == "auto_approve" and product_id != 4999


async def test_bad_entries_answer_the_form_and_csrf_and_origin_are_required(api: Api) -> None:
    await api.user("root", admin=True)
    async with logged_in(api, "root") as browser:
        for form, text in [
            ({"name": "  "}, "name must be 1..128 characters"),
            ({"name": "X", "id": "twelve"}, "id must be a number"),
            ({"name": "X", "policy": "open_door"}, "policy one of the three"),
            ({"name": "X", "id": "0"}, "id must be 1..2147483647"),
        ]:
            answer = await browser.post("/console/products", form)
            assert answer.status_code == 400 and text in answer.text, (form, answer.text[:300])
        assert (await browser.post("/console/products", {"name": "X"}, csrf="-")).status_code == 403
        assert (await browser.post("/console/products", {"name": "X"}, origin="http://evil.example")).status_code == 403
    assert (await api.ok("GET", "/v1/products"))["products"] == []


async def test_a_server_admin_registers_device_keys_from_a_csv_file(api: Api) -> None:
    good = DeviceIdentity.generate()
    csv = f"device_id,public_key\n{good.device_id_hex},{good.key.public.hex()}\n{'ab' * 12},not-a-key\n"
    await api.user("root", admin=True)
    await api.user("ada")
    async with logged_in(api, "root") as browser:
        assert "Register device keys" in (await browser.get("/console/")).text
        done = await browser.post("/console/keys", files={"file": ("devices.csv", csv.encode(), "text/csv")})
        assert done.status_code == 303
        page = await browser.get("/console/")
        assert "1 device keys registered, 1 refused" in page.text, page.text[page.text.find("<main") :][:600]
        empty = await browser.post("/console/keys", files={"file": ("", b"", "text/csv")})
        assert empty.status_code == 400 and "choose a CSV file" in empty.text
    registered = await api.ok("GET", f"/v1/devices/{good.device_id_hex}")
    assert registered["id"] == good.device_id_hex
    async with logged_in(api, "ada") as browser:
        assert "Register device keys" not in (await browser.get("/console/")).text
        other = DeviceIdentity.generate()
        forged = await browser.post(
            "/console/keys", files={"file": ("d.csv", f"{other.device_id_hex},{other.key.public.hex()}\n".encode())}
        )
        assert forged.status_code == 403
    assert (await api.call("GET", f"/v1/devices/{other.device_id_hex}")).status_code == 404
