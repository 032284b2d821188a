"""The devices hub and the device page over HTTP: what each role sees, forms that act and redirect,
refusals (role, CSRF, Origin), escaping of what operators and devices wrote."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from firmware_sim.device import DeviceSettings, SimDevice, connect_device
from firmware_sim.identity import DeviceIdentity
from protocol.codes import Privilege, Status
from tests.api.conftest import Api

from .support import Browser, logged_in

P = 701
HUB = f"/console/products/{P}/devices"


@asynccontextmanager
async def online(api: Api, identity: DeviceIdentity, version: int = 1) -> AsyncIterator[SimDevice]:
    stream = await trio.open_tcp_stream("127.0.0.1", api.server.device_port)
    settings = DeviceSettings(product_id=P, firmware_version=version)
    async with connect_device(stream, identity, api.server.ctx.server_key.public, settings) as device:
        await device.ping()
        yield device


async def team(api: Api) -> None:
    await api.product("Greenhouse", P)
    for name, role in (("sam", "support"), ("victor", "view_only"), ("dora", "developer")):
        await api.user(name)
        await api.ok("POST", f"/v1/products/{P}/team", json={"username": name, "role": role})


async def quarantined(api: Api, count: int) -> list[DeviceIdentity]:
    """Devices that connected once with the product's firmware: on its quarantine list."""
    ids = [DeviceIdentity.generate() for _ in range(count)]
    for identity in ids:
        await api.provision(identity)
        async with online(api, identity):
            pass
        with trio.fail_after(5):
            await api.server.ctx.registry.wait_gone(identity.device_id_hex)
    await api.server.ctx.store.flush()
    return ids


def rows(html: str, table: str) -> list[str]:
    """The device IDs in one table of a page."""
    found = re.search(rf'<table class="list" id="{table}">(.*?)</table>', html, re.S)
    return re.findall(r'data-device-id="([0-9a-f]{24})"', found.group(1)) if found else []


def button(html: str, label: str) -> str:
    found = re.search(rf"<button[^>]*>{re.escape(label)}</button>", html)
    assert found, label
    return found.group(0)


async def test_a_viewer_sees_the_quarantine_with_disabled_buttons_and_a_forged_post_is_refused(api: Api) -> None:
    await team(api)
    (device,) = await quarantined(api, 1)
    async with logged_in(api, "victor") as victor:
        page = await victor.get(HUB)
        assert page.status_code == 200
        assert rows(page.text, "quarantine") == [device.device_id_hex]
        approve = button(page.text, "Approve")
        assert "disabled" in approve and 'title="your role (view_only) may not approve devices"' in approve
        forged = await victor.post(f"{HUB}/approve", {"only": device.device_id_hex})
        assert forged.status_code == 403
        assert "may not approve devices" in forged.text
        denied = await victor.post(f"{HUB}/deny", {"only": device.device_id_hex})
        assert denied.status_code == 403
    listed = await api.ok("GET", f"/v1/products/{P}/devices", params={"status": "quarantined"})
    assert [d["id"] for d in listed["devices"]] == [device.device_id_hex]  # nothing changed


async def test_support_approves_one_and_denies_many_and_the_hub_says_why(api: Api) -> None:
    await team(api)
    a, b, c = await quarantined(api, 3)
    async with logged_in(api, "sam") as sam:
        page = await sam.get(HUB)
        assert "disabled" not in button(page.text, "Approve")
        assert "unrecognised device: product quarantines" in page.text  # the admission's reason
        done = await sam.post(f"{HUB}/approve", {"only": a.device_id_hex})
        assert done.status_code == 303 and done.headers["location"] == HUB
        page = await sam.get(HUB)
        assert "1 device approved" in page.text  # the one-time notice
        assert set(rows(page.text, "quarantine")) == {b.device_id_hex, c.device_id_hex}
        assert rows(page.text, "devices") == [a.device_id_hex]
        assert "approved by user:sam" in page.text
        assert "1 device approved" not in (await sam.get(HUB)).text  # shown once

        bulk = await sam.post(f"{HUB}/deny", {"device": [b.device_id_hex, c.device_id_hex]})
        assert bulk.status_code == 303
        page = await sam.get(HUB)
        assert "2 devices denied" in page.text
        assert rows(page.text, "quarantine") == []
        denied_part = page.text.split('id="denied"')[1]
        assert b.device_id_hex in denied_part and c.device_id_hex in denied_part
        assert "denied by user:sam" in denied_part
        again = await sam.post(f"{HUB}/approve", {"only": b.device_id_hex})  # re-approve from Denied
        assert again.status_code == 303
        page = await sam.get(HUB, params={"status": "all", "sort": "id"})
        assert sorted(rows(page.text, "devices")) == sorted([a.device_id_hex, b.device_id_hex, c.device_id_hex])
        nothing = await sam.post(f"{HUB}/approve", {})
        assert nothing.status_code == 400 and "select at least one device" in nothing.text


async def test_forms_need_the_csrf_token_and_our_origin(api: Api) -> None:
    await team(api)
    (device,) = await quarantined(api, 1)
    async with logged_in(api, "sam") as sam:
        await sam.get(HUB)
        form = {"only": device.device_id_hex}
        assert (await sam.post(f"{HUB}/approve", form, csrf="-")).status_code == 403
        assert (await sam.post(f"{HUB}/approve", form, csrf="f" * 64)).status_code == 403
        assert (await sam.post(f"{HUB}/approve", form, origin="http://evil.example")).status_code == 403
        assert (await sam.post(f"{HUB}/approve", form, origin=None)).status_code == 403
    async with logged_in(api, "dora") as dora:  # another session's token is no good either
        await dora.get(HUB)
        stolen = dora.csrf
    async with logged_in(api, "sam") as sam:
        assert (await sam.post(f"{HUB}/approve", form, csrf=stolen)).status_code == 403
    listed = await api.ok("GET", f"/v1/products/{P}/devices", params={"status": "quarantined"})
    assert len(listed["devices"]) == 1


async def test_hostile_names_and_notes_are_escaped(api: Api) -> None:
    await team(api)
    device = "ab" * 12
    await api.ok("POST", f"/v1/products/{P}/devices", json={"id": device})
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await api.ok("PUT", f"/v1/products/{P}/devices/{device}", json={"name": hostile, "notes": hostile})
    async with logged_in(api, "victor") as victor:
        for path in (HUB, f"{HUB}/{device}"):
            page = await victor.get(path)
            assert "<script>alert" not in page.text and "<img src=x" not in page.text
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


async def test_filters_search_sort_and_paging(api: Api) -> None:
    await team(api)
    ids = [f"{i:024x}" for i in range(1, 56)]
    await api.ok("POST", f"/v1/products/{P}/devices", files={"file": ("ids.txt", "\n".join(ids))})
    await api.ok("POST", f"/v1/products/{P}/groups", json={"name": "north"})
    await api.ok("PUT", f"/v1/products/{P}/devices/{ids[3]}", json={"groups": ["north"], "name": "Tomato bed"})
    async with logged_in(api, "victor") as victor:
        first = await victor.get(HUB)
        assert len(rows(first.text, "devices")) == 50 and "page 1 of 2" in first.text
        second = await victor.get(HUB, params={"page": 2})
        assert rows(second.text, "devices") == ids[50:]
        assert rows((await victor.get(HUB, params={"name": "tomato"})).text, "devices") == [ids[3]]
        assert rows((await victor.get(HUB, params={"group": "north"})).text, "devices") == [ids[3]]
        assert rows((await victor.get(HUB, params={"id": ids[7][-4:]})).text, "devices") == [ids[7]]
        desc = await victor.get(HUB, params={"sort": "id", "order": "desc"})
        assert rows(desc.text, "devices")[0] == ids[-1]
        assert rows((await victor.get(HUB, params={"online": "yes"})).text, "devices") == []
        bad = await victor.get(HUB, params={"sort": "colour"})
        assert bad.status_code == 400 and "<html" in bad.text  # a page, not JSON


async def test_import_by_paste_and_file_needs_a_developer(api: Api) -> None:
    await team(api)
    async with logged_in(api, "sam") as sam:
        page = await sam.get(HUB)
        assert "disabled" in button(page.text, "Add devices")
        refused = await sam.post(f"{HUB}/import", {"ids": "cd" * 12})
        assert refused.status_code == 403
    async with logged_in(api, "dora") as dora:
        await dora.get(HUB)
        pasted = await dora.post(f"{HUB}/import", {"ids": f"{'cd' * 12}\nnot-an-id\n"})
        assert pasted.status_code == 303
        assert "1 device added, 1 not device IDs" in (await dora.get(HUB)).text
        files = {"file": ("more.txt", f"{'ef' * 12}\n".encode(), "text/plain")}
        uploaded = await dora.http.post(
            f"{HUB}/import", data={"csrf": dora.csrf}, files=files, headers={"Origin": dora.origin}
        )
        assert uploaded.status_code == 303
    listed = await api.ok("GET", f"/v1/products/{P}/devices")
    assert {d["id"] for d in listed["devices"]} == {"cd" * 12, "ef" * 12}


async def _device_page(browser: Browser, device_id: str) -> str:
    page = await browser.get(f"{HUB}/{device_id}")
    assert page.status_code == 200, page.text
    return page.text


async def test_the_device_page_shows_privileges_firmware_and_history_and_edits(api: Api) -> None:
    await team(api)
    (device,) = await quarantined(api, 1)
    device_id = device.device_id_hex
    await api.ok("POST", f"/v1/products/{P}/groups", json={"name": "north"})
    async with online(api, device, version=3) as live, logged_in(api, "dora") as dora:
        await api.server.ctx.store.flush()
        text = await _device_page(dora, device_id)
        assert "quarantined" in text and "none <small>(told at" in text  # no privileges while quarantined
        assert (await dora.post(f"{HUB}/approve", {"only": device_id, "next": f"{HUB}/{device_id}"})).headers[
            "location"
        ] == f"{HUB}/{device_id}"
        with trio.fail_after(5):
            await live.wait_status(Status.OK)  # the device is told at once
        assert live.state.privileges == Privilege.all()
        await api.server.ctx.store.flush()
        text = await _device_page(dora, device_id)
        privileges = re.search(r'<dd id="privileges">(.*?)</dd>', text, re.S)
        assert privileges and "ota, product_events, claim, webhooks" in privileges.group(1)
        assert "v3" in text and "approved" in text
        history = text.split('id="history"')[1]
        assert "approved" in history and "user:dora" in history and "admission" in history

        saved = await dora.post(
            f"{HUB}/{device_id}/edit", {"name": "Bed 7", "notes": "by the door", "development": "1"}
        )
        assert saved.status_code == 303
        grouped = await dora.post(f"{HUB}/{device_id}/groups", {"group": ["north"]})
        assert grouped.status_code == 303
        text = await _device_page(dora, device_id)
        assert "device saved" not in text  # the groups' notice replaced it
        assert "groups saved" in text and "Bed 7" in text and "by the door" in text
        shown = await api.ok("GET", f"/v1/products/{P}/devices/{device_id}")
        assert (shown["name"], shown["development"], shown["groups"]) == ("Bed 7", True, ["north"])
        assert shown["firmware_target_reason"] is not None
        assert shown["firmware_target_reason"] in text

        unknown_lock = await dora.post(f"{HUB}/{device_id}/lock", {"version": "9"})
        assert unknown_lock.status_code in (400, 404, 409) and "<html" in unknown_lock.text
        removed = await dora.post(f"{HUB}/{device_id}/remove", {})
        assert removed.status_code == 303
        assert "device " + device_id + " removed" in (await dora.get(HUB)).text


async def test_pages_of_a_product_outside_the_team_are_refused(api: Api) -> None:
    await team(api)
    await api.product("Elsewhere", P + 1)
    async with logged_in(api, "victor") as victor:
        other = await victor.get(f"/console/products/{P + 1}/devices")
        assert other.status_code == 403 and "not on the team" in other.text
        missing = await victor.get("/console/products/9999/devices")
        assert missing.status_code == 404
        bad_id = await victor.get(f"{HUB}/zz")
        assert bad_id.status_code in (400, 404) and "<html" in bad_id.text


async def test_the_device_page_escapes_event_data_and_disables_what_a_viewer_may_not_do(api: Api) -> None:
    await team(api)
    identity = DeviceIdentity.generate()
    await api.provision(identity)
    await api.ok("POST", f"/v1/products/{P}/devices", json={"id": identity.device_id_hex})
    async with online(api, identity) as live:
        await live.publish("<b>temp</b>", b'<script>alert("x")</script>')
    await api.server.ctx.store.flush()
    async with logged_in(api, "victor") as victor:
        text = await _device_page(victor, identity.device_id_hex)
    events = text.split('id="events"')[1]
    assert "&lt;b&gt;temp&lt;/b&gt;" in events and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in events
    assert "<script>alert" not in text
    save = button(text, "Save")
    assert "disabled" in save and "may not edit devices" in save
    remove = button(text, "Remove")
    assert "disabled" in remove and "may not remove devices" in remove
