"""The console's rollouts and firmware pages over HTTP: each action calls the API's operation,
needs the page's CSRF token and the role's permission (shown disabled when missing, refused
anyway), and previews what it would touch before it does."""

from __future__ import annotations

import re

from firmware_sim import firmware
from tests.api.conftest import Api

from .support import Browser, logged_in

P = 5101
BASE = f"/console/products/{P}"
DEVICES = [f"{i:02x}" * 12 for i in range(0x30, 0x34)]


async def world(api: Api) -> None:
    await api.user("dana")  # developer
    await api.user("vic")  # view only
    await api.product("Lamp", P)
    for name, role in (("dana", "developer"), ("vic", "view_only")):
        await api.ok("POST", f"/v1/products/{P}/team", json={"username": name, "role": role})
    for device in DEVICES:
        await api.ok("POST", f"/v1/products/{P}/devices", json={"id": device})
    await api.ok("POST", f"/v1/products/{P}/groups", json={"name": "beta"})
    await api.ok("PUT", f"/v1/products/{P}/devices/{DEVICES[0]}", json={"groups": ["beta"]})
    for version in (1, 2):
        await upload(api, version)


async def upload(api: Api, version: int) -> None:
    files = {"binary": ("fw.bin", firmware.build(P, version, 2000), "application/octet-stream")}
    await api.ok("POST", f"/v1/products/{P}/firmware", data={"version": str(version), "title": f"v{version}"},
                 files=files)  # fmt: skip


def disabled_buttons(html: str) -> list[str]:
    return re.findall(r"<button[^>]*disabled title=\"([^\"]*)\"", html)


async def test_a_staged_rollout_from_preview_to_abort(api: Api) -> None:
    await world(api)
    async with logged_in(api, "dana") as browser:
        page = await browser.get(f"{BASE}/rollouts/new")
        assert page.status_code == 200 and "Show the devices it will update" in page.text
        form: dict[str, str | list[str]] = {
            "version": "2", "target": "product_default", "strategy": "staged", "stages": "50%",
            "error_threshold": "0.5", "error_action": "pause",
        }  # fmt: skip
        preview = await browser.post(f"{BASE}/rollouts/new", form)
        assert preview.status_code == 200, preview.text
        assert 'class="preview-count">4<' in preview.text and DEVICES[3] in preview.text
        assert (await api.ok("GET", f"/v1/products/{P}/rollouts"))["rollouts"] == []  # a preview starts nothing

        started = await browser.post(f"{BASE}/rollouts", form)
        assert started.status_code == 303
        location = started.headers["location"]
        rollout_id = int(re.search(r"/rollouts/(\d+)", location).group(1))  # type: ignore[union-attr]
        detail = await browser.get(location)
        assert detail.status_code == 200
        assert "Stage 1 (open)" in detail.text and "Stage 2" in detail.text
        assert 'data-pending="4"' in detail.text and "error threshold: 1 failed device" in detail.text
        assert f'action="{BASE}/rollouts/{rollout_id}/pause"' in detail.text

        live = await browser.get(f"{BASE}/rollouts/{rollout_id}/live")
        assert live.status_code == 200 and "<html" not in live.text and 'data-finished="no"' in live.text

        # Without the CSRF token, or from another origin, nothing happens.
        assert (await browser.post(f"{BASE}/rollouts/{rollout_id}/pause", csrf="-")).status_code == 403
        evil = await browser.post(f"{BASE}/rollouts/{rollout_id}/pause", origin="http://evil.example")
        assert evil.status_code == 403
        assert (await api.ok("GET", f"/v1/products/{P}/rollouts/{rollout_id}"))["rollout"]["state"] == "running"

        for action, state in (("pause", "paused"), ("resume", "running"), ("abort", "aborted")):
            done = await browser.post(f"{BASE}/rollouts/{rollout_id}/{action}")
            assert done.status_code == 303, done.text
            assert (await api.ok("GET", f"/v1/products/{P}/rollouts/{rollout_id}"))["rollout"]["state"] == state
        listing = await browser.get(f"{BASE}/rollouts")
        assert f"Rollout {rollout_id}: version 2" in listing.text and 'data-skipped="4"' in listing.text

        # An action that does not apply answers with the operation's own message.
        again = await browser.post(f"{BASE}/rollouts/{rollout_id}/resume")
        assert again.status_code == 409 and "has already aborted" in again.text


async def test_the_create_form_shows_the_operations_error(api: Api) -> None:
    await world(api)
    async with logged_in(api, "dana") as browser:
        await browser.get(f"{BASE}/rollouts/new")
        answer = await browser.post(f"{BASE}/rollouts/new", {"version": "2", "target": "groups"})
        assert answer.status_code == 400 and "name exactly one target" in answer.text
        answer = await browser.post(f"{BASE}/rollouts/new", {"version": "9", "target": "product_default"})
        assert answer.status_code == 400 and "has no firmware version 9" in answer.text


async def test_a_viewer_sees_disabled_controls_and_a_forged_post_is_refused(api: Api) -> None:
    await world(api)
    rollout = await api.ok("POST", f"/v1/products/{P}/rollouts", json={"version": 2, "product_default": True})
    rollout_id = rollout["rollout"]["id"]
    async with logged_in(api, "vic") as browser:
        detail = await browser.get(f"{BASE}/rollouts/{rollout_id}")
        assert detail.status_code == 200
        reasons = disabled_buttons(detail.text)
        assert "your role (view_only) may not release firmware" in reasons and len(reasons) == 2  # pause, abort
        for action in ("pause", "abort"):
            refused = await browser.post(f"{BASE}/rollouts/{rollout_id}/{action}")
            assert refused.status_code == 403 and "may not release firmware" in refused.text
        assert (await api.ok("GET", f"/v1/products/{P}/rollouts/{rollout_id}"))["rollout"]["state"] == "running"
        firmware_page = await browser.get(f"{BASE}/firmware")
        assert "your role (view_only) may not upload or delete firmware" in disabled_buttons(firmware_page.text)
        refused = await browser.post(f"{BASE}/firmware/1/delete")
        assert refused.status_code == 403
        assert [f["version"] for f in await api.ok("GET", f"/v1/products/{P}/firmware")] == [1, 2]
        # A preview changes nothing: a viewer may look.
        preview = await browser.post(f"{BASE}/firmware/2/release/preview", {"product_default": "on"})
        assert preview.status_code == 200 and 'class="preview-count">4<' in preview.text
        refused = await browser.post(f"{BASE}/firmware/2/release", {"product_default": "on"})
        assert refused.status_code == 403
    await api.ok("POST", f"/v1/products/{P}/rollouts/{rollout_id}/abort")


async def upload_form(browser: Browser, data: bytes, version: str, title: str = "t") -> tuple[int, str]:
    files = {"binary": ("x.bin", data, "application/octet-stream")}
    response = await browser.http.post(
        f"{BASE}/firmware", data={"csrf": browser.csrf, "version": version, "title": title}, files=files,
        headers={"Origin": browser.origin},
    )  # fmt: skip
    return response.status_code, response.text


async def test_firmware_upload_checks_the_header_and_escapes_titles(api: Api) -> None:
    await world(api)
    async with logged_in(api, "dana") as browser:
        page = await browser.get(f"{BASE}/firmware")
        assert page.status_code == 200 and "not released" in page.text
        # The header is checked: the server's error is on the page.
        status, text = await upload_form(browser, b"not firmware at all" * 10, "3")
        assert status == 400 and "The server refused the upload" in text and "(binary)" in text
        status, text = await upload_form(browser, firmware.build(P, 4, 1000), "3")
        assert status == 400 and "version" in text
        # Multipart without the token is refused like any other form.
        files = {"binary": ("x.bin", firmware.build(P, 3, 1000), "application/octet-stream")}
        forged = await browser.http.post(f"{BASE}/firmware", data={"version": "3", "title": "t"}, files=files,
                                         headers={"Origin": browser.origin})  # fmt: skip
        assert forged.status_code == 403
        status, _ = await upload_form(browser, firmware.build(P, 3, 1000), "3", "<b>three</b>")
        assert status == 303
        page = await browser.get(f"{BASE}/firmware")
        assert "&lt;b&gt;three&lt;/b&gt;" in page.text and "<b>three</b>" not in page.text  # escaped
        record = await api.ok("GET", f"/v1/products/{P}/firmware/3")
        assert record["title"] == "<b>three</b>" and record["uploaded_by"]["username"] == "dana"


async def test_release_confirmation_names_devices_then_releases(api: Api) -> None:
    await world(api)
    async with logged_in(api, "dana") as browser:
        form = await browser.get(f"{BASE}/firmware/2/release")
        assert form.status_code == 200 and "group beta" in form.text
        preview = await browser.post(f"{BASE}/firmware/2/release/preview", {"groups": "beta"})
        assert preview.status_code == 200
        assert 'class="preview-count">1<' in preview.text and DEVICES[0] in preview.text
        assert DEVICES[1] not in preview.text
        assert not (await api.ok("GET", f"/v1/products/{P}/firmware/2"))["groups"]  # not yet
        done = await browser.post(f"{BASE}/firmware/2/release", {"groups": "beta"})
        assert done.status_code == 303
        assert "Version 2 released to group beta." in (await browser.get(done.headers["location"])).text
        assert (await api.ok("GET", f"/v1/products/{P}/firmware/2"))["groups"] == ["beta"]
        audit = (await api.ok("GET", f"/v1/products/{P}/audit", params={"action": "firmware_released"}))["audit"]
        assert audit[-1]["actor"] == "user:dana"
        page = await browser.get(f"{BASE}/firmware")
        assert "group beta" in page.text
        # Released versions cannot be deleted: the button is gone and the operation refuses anyway.
        refused = await browser.post(f"{BASE}/firmware/2/delete")
        assert refused.status_code == 409 and "is released" in refused.text
        deleted = await browser.post(f"{BASE}/firmware/1/delete")
        assert deleted.status_code == 303
        assert [f["version"] for f in await api.ok("GET", f"/v1/products/{P}/firmware")] == [2]
