"""The console's events, audit, webhooks and settings pages over HTTP: filters and paging, the
escaping of device- and operator-typed text, CSRF on every form, and roles (disabled with the
reason, refused anyway)."""

from __future__ import annotations

import json
import re
import time

import httpx
import trio

from server.store.records import EventRecord
from tests.api.conftest import Api

from .support import logged_in

P = 5201
BASE = f"/console/products/{P}"
DEVICE = "5a" * 12
HOSTILE = "<script>alert(1)</script>"


async def world(api: Api) -> None:
    await api.user("ada")  # administrator
    await api.user("vic")  # view only
    await api.product("Meter", P)
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "ada", "role": "administrator"})
    await api.ok("POST", f"/v1/products/{P}/team", json={"username": "vic", "role": "view_only"})
    await api.ok("POST", f"/v1/products/{P}/devices", json={"id": DEVICE})


async def publish(api: Api, name: str, data: str, device: str = DEVICE) -> None:
    record = EventRecord(device, name, data.encode(), 60, True, time.time(), product_id=P)
    await api.server.ctx.event_log.append_and_wait(record)


async def test_events_page_history_filters_paging_and_escaping(api: Api) -> None:
    await world(api)
    for i in range(60):
        await publish(api, f"m/{i:02d}", "1")
    await publish(api, HOSTILE, HOSTILE)
    async with logged_in(api, "vic") as browser:
        page = await browser.get(f"{BASE}/events")
        assert page.status_code == 200
        assert HOSTILE not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        ids = [int(i) for i in re.findall(r'<tr data-id="(\d+)"', page.text)]
        assert len(ids) == 50 and ids == sorted(ids, reverse=True)  # the newest 50, newest first
        assert f"&after={ids[0]}" in page.text  # the stream resumes right after what the page shows
        quiet = await browser.get(f"{BASE}/events", params={"device_id": "ab" * 12})
        assert "No events match" in quiet.text and f"&after={ids[0]}" in quiet.text  # not a replay of everything
        earlier = re.search(r'data-log-earlier href="([^"]+)"', page.text)
        assert earlier is not None
        older = await browser.get(earlier.group(1).replace("&amp;", "&"))
        older_ids = [int(i) for i in re.findall(r'<tr data-id="(\d+)"', older.text)]
        assert older_ids == list(range(ids[-1] - 1, ids[-1] - 12, -1))  # the 11 before, no gap

        only = await browser.get(f"{BASE}/events", params={"prefix": "m/0", "device_id": DEVICE})
        assert len(re.findall(r"<tr data-id=", only.text)) == 10
        history = await browser.get(f"{BASE}/events/history", params={"prefix": "m/0", "before": ids[0]})
        assert [e["event"] for e in history.json()["events"]] == [f"m/{i:02d}" for i in range(10)]
        bad = await browser.get(f"{BASE}/events", params={"device_id": "nope"})
        assert (bad.status_code == 400 and "device_id" not in bad.text) or "device" in bad.text


async def test_the_event_stream_sends_json_messages_after_an_id(api: Api) -> None:
    await world(api)
    await publish(api, "a/1", "x")
    await publish(api, "b/1", HOSTILE)
    lines: list[str] = []
    async with logged_in(api, "vic") as browser, trio.open_nursery() as nursery:

        async def read() -> None:  # then cancelled, as a browser leaves
            params: dict[str, str | int] = {"after": 0, "prefix": "b/"}
            async with browser.http.stream("GET", f"{BASE}/events/stream", params=params) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                async for line in response.aiter_lines():
                    lines.append(line)
                    if line.startswith("data: "):
                        nursery.cancel_scope.cancel()

        nursery.start_soon(read)
    message = json.loads(next(line for line in lines if line.startswith("data: "))[len("data: ") :])
    assert (message["event"], message["data"], message["coreid"]) == ("b/1", HOSTILE, DEVICE)
    assert not any(line.startswith("event:") for line in lines)  # unnamed: EventSource's `message`


async def test_the_console_streams_and_pages_need_the_session(api: Api) -> None:
    await world(api)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.server.api_port}") as anonymous:
        for path in ("/events", "/events/history", "/events/stream", "/audit", "/webhooks", "/settings",
                     "/rollouts", "/firmware"):  # fmt: skip
            response = await anonymous.get(BASE + path)
            assert response.status_code == 303 and "/console/login" in response.headers["location"], path


async def test_audit_page_filters_pages_and_escapes(api: Api) -> None:
    await world(api)
    await api.ok("PUT", f"/v1/products/{P}/devices/{DEVICE}", json={"notes": HOSTILE, "name": "n"})
    for i in range(55):
        await api.ok("POST", f"/v1/products/{P}/groups", json={"name": f"g{i}"})
    async with logged_in(api, "vic") as browser:
        page = await browser.get(f"{BASE}/audit")
        assert page.status_code == 200 and HOSTILE not in page.text
        ids = [int(i) for i in re.findall(r'<tr data-id="(\d+)"', page.text)]
        assert len(ids) == 50 and ids == sorted(ids, reverse=True)
        nxt = re.search(r'href="\?([^"]+before=\d+)"', page.text)
        assert nxt is not None
        older = await browser.get(f"{BASE}/audit?" + nxt.group(1).replace("&amp;", "&"))
        assert max(int(i) for i in re.findall(r'<tr data-id="(\d+)"', older.text)) == ids[-1] - 1
        about = await browser.get(f"{BASE}/audit", params={"device_id": DEVICE})
        actions = re.findall(r"\?action=([a-z_]+)", about.text)
        assert "group_created" not in actions and actions
        mine = await browser.get(f"{BASE}/audit", params={"action": "group_created", "actor": "user:admin"})
        assert len(re.findall(r"<tr data-id=", mine.text)) == 50


async def test_webhooks_create_edit_history_delete_with_roles(api: Api) -> None:
    await world(api)
    async with logged_in(api, "ada") as browser:
        await browser.get(f"{BASE}/webhooks/new")
        form: dict[str, str | list[str]] = {"name": HOSTILE, "event": "temp", "url": "https://example.com/in/{{{PARTICLE_DEVICE_ID}}}",
                "method": "POST", "headers": "X-Token: abc", "json": '{"v": "{{{PARTICLE_EVENT_VALUE}}}"}'}  # fmt: skip
        assert (await browser.post(f"{BASE}/webhooks", form, csrf="-")).status_code == 403
        bad = await browser.post(f"{BASE}/webhooks", {**form, "event": "hook-response/x"})
        assert bad.status_code == 400 and "hook-" in bad.text
        created = await browser.post(f"{BASE}/webhooks", form)
        assert created.status_code == 303
        hook_id = int(re.search(r"/webhooks/(\d+)", created.headers["location"]).group(1))  # type: ignore[union-attr]
        stored = (await api.ok("GET", f"/v1/products/{P}/webhooks/{hook_id}"))["config"]
        assert stored["event"] == "temp" and stored["headers"] == {"X-Token": "abc"}
        assert stored["json"] == {"v": "{{{PARTICLE_EVENT_VALUE}}}"}
        detail = await browser.get(created.headers["location"])
        assert detail.status_code == 200 and "triggered" in detail.text and HOSTILE not in detail.text
        edit = await browser.get(f"{BASE}/webhooks/{hook_id}/edit")
        assert "X-Token: abc" in edit.text
        saved = await browser.post(f"{BASE}/webhooks/{hook_id}", {**form, "event": "temp2", "disabled": "on"})
        assert saved.status_code == 303
        stored = (await api.ok("GET", f"/v1/products/{P}/webhooks/{hook_id}"))["config"]
        assert stored["event"] == "temp2" and stored["disabled"] is True
    async with logged_in(api, "vic") as viewer:  # view_only may not even read webhooks (they hold credentials)
        assert (await viewer.get(f"{BASE}/webhooks")).status_code == 403
        assert (await viewer.post(f"{BASE}/webhooks/{hook_id}/delete")).status_code == 403
    async with logged_in(api, "ada") as browser:
        await browser.get(f"{BASE}/webhooks")
        assert (await browser.post(f"{BASE}/webhooks/{hook_id}/delete")).status_code == 303
        assert (await api.ok("GET", f"/v1/products/{P}/webhooks"))["webhooks"] == []


async def test_settings_policy_team_customers_groups(api: Api) -> None:
    await world(api)
    async with logged_in(api, "vic") as viewer:
        page = await viewer.get(f"{BASE}/settings")
        assert page.status_code == 200
        for reason in ("change the product's name or policy", "change the team", "create customers",
                       "create or delete device groups"):  # fmt: skip
            assert f"your role (view_only) may not {reason}" in page.text.replace("&#39;", "'")
        assert (await viewer.post(f"{BASE}/settings/policy", {"policy": "auto_approve"})).status_code == 403
        assert (await api.ok("GET", f"/v1/products/{P}"))["product"]["policy"] == "quarantine"
    async with logged_in(api, "ada") as admin:
        await admin.get(f"{BASE}/settings")
        assert (await admin.post(f"{BASE}/settings/policy", {"policy": "auto_approve"}, csrf="-")).status_code == 403
        done = await admin.post(f"{BASE}/settings/policy", {"policy": "preadd_only"})
        assert done.status_code == 303
        assert (await api.ok("GET", f"/v1/products/{P}"))["product"]["policy"] == "preadd_only"
        assert (await admin.post(f"{BASE}/settings/policy", {"policy": "whatever"})).status_code == 400

        # The team keeps an administrator: ada, the only one left, may not demote herself.
        await api.ok("DELETE", f"/v1/products/{P}/team/admin")
        alone = await admin.post(f"{BASE}/settings/team", {"username": "ada", "role": "developer"})
        assert alone.status_code == 400 and "only administrator" in alone.text
        assert (await admin.post(f"{BASE}/settings/team", {"username": "vic", "role": "support"})).status_code == 303
        team = {m["username"]: m["role"] for m in (await api.ok("GET", f"/v1/products/{P}/team"))["team"]}
        assert team["vic"] == "support"
        assert (await admin.post(f"{BASE}/settings/team/vic/remove")).status_code == 303

        created = await admin.post(f"{BASE}/settings/customers", {"username": "carl", "password": "long enough pw"})
        assert created.status_code == 303
        customers = (await api.ok("GET", f"/v1/products/{P}/customers"))["customers"]
        assert [c["username"] for c in customers] == ["carl"]
        hostile = await admin.post(f"{BASE}/settings/customers", {"username": HOSTILE, "password": "long enough pw"})
        assert hostile.status_code in (303, 400) and HOSTILE not in hostile.text
        assert (await admin.post(f"{BASE}/settings/groups", {"name": "Bad Name"})).status_code == 400
        assert (await admin.post(f"{BASE}/settings/groups", {"name": "beta"})).status_code == 303
        page = await admin.get(f"{BASE}/settings")
        assert "beta" in page.text and HOSTILE not in page.text
        assert (await admin.post(f"{BASE}/settings/groups/beta/delete")).status_code == 303
        assert (await api.ok("GET", f"/v1/products/{P}/groups"))["groups"] == []
