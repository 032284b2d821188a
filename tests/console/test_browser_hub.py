"""The devices hub in Debian's Chromium against a real `fleetgate serve`, with simulated devices on
real sockets: arrivals appear live, approve tells the device, deny collapses, a viewer is refused.

FLEETGATE_CONSOLE_SCREENSHOTS=docs/console saves the screens docs/CONSOLE.md shows (laptop width)."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Browser, Page, ViewportSize, expect

from firmware_sim.identity import DeviceIdentity
from protocol.codes import Privilege, Status

from .browser_support import PASSWORD, Setup, live_device
from .conftest import PRODUCT

HUB = f"/console/products/{PRODUCT}/devices"
LAPTOP: ViewportSize = {"width": 1280, "height": 800}


def shoot(page: Page, name: str) -> None:
    folder = os.environ.get("FLEETGATE_CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def log_in(page: Page, setup: Setup, username: str) -> None:
    page.set_viewport_size(LAPTOP)
    page.goto(setup.url + HUB)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    if username == "olivia":
        shoot(page, "login")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()


def test_quarantine_live_approve_deny_and_reapprove(page: Page, console_setup: Setup) -> None:
    setup = console_setup
    first, second, earlier = DeviceIdentity.generate(), DeviceIdentity.generate(), DeviceIdentity.generate()
    for identity in (first, second, earlier):
        setup.provision(identity)
    setup.call("POST", f"/v1/products/{PRODUCT}/devices", json={"id": "0a" * 12})  # an approved member
    setup.call("PUT", f"/v1/products/{PRODUCT}/devices/{'0a' * 12}", json={"name": "Roof station"})
    with live_device(setup.served, earlier, PRODUCT) as device:  # waits in quarantine, offline
        device.wait_for(Status.QUARANTINED)
    log_in(page, setup, "olivia")
    expect(page.locator("#quarantine tbody tr")).to_have_count(1)

    with live_device(setup.served, first, PRODUCT) as one:
        assert one.wait_for(Status.QUARANTINED) == (Status.QUARANTINED, Privilege.NONE)
        banner = page.locator("#live-quarantine")
        expect(banner).to_be_visible()  # no reload: the change stream told the page
        expect(banner).to_contain_text("1 new device in quarantine")
        banner.get_by_role("link", name="show").click()
        row = page.locator(f'#quarantine tr[data-device-id="{first.device_id_hex}"]')
        expect(row).to_contain_text("unrecognised device: product quarantines")

        with live_device(setup.served, second, PRODUCT) as two:
            two.wait_for(Status.QUARANTINED)
            expect(page.locator("#live-quarantine")).to_contain_text("1 new device in quarantine")
            page.get_by_role("link", name="show").click()
            expect(page.locator("#quarantine tbody tr")).to_have_count(3)
            shoot(page, "hub-quarantine")

            row = page.locator(f'#quarantine tr[data-device-id="{first.device_id_hex}"]')
            row.get_by_role("button", name="Approve").click()
            expect(page.get_by_role("status").first).to_contain_text("1 device approved")
            # The device is told at once, on the link it is connected over.
            assert one.wait_for(Status.OK) == (Status.OK, Privilege.all())
            expect(page.locator(f'#devices tr[data-device-id="{first.device_id_hex}"]')).to_contain_text("approved")

            page.locator(f'#quarantine tr[data-device-id="{second.device_id_hex}"]').get_by_role(
                "button", name="Deny"
            ).click()
            expect(page.get_by_role("status").first).to_contain_text("1 device denied")
            assert two.wait_for(Status.DENIED)[0] is Status.DENIED
            denied_row = page.locator(f'#denied tr[data-device-id="{second.device_id_hex}"]')
            expect(denied_row).to_be_hidden()  # collapsed
            page.locator("#denied summary").click()
            expect(denied_row).to_be_visible()
            expect(denied_row).to_contain_text("device is on the product's Denied list (user:olivia)")
            shoot(page, "hub")

            page.goto(setup.url + f"{HUB}/{first.device_id_hex}")
            expect(page.locator("#privileges")).to_contain_text("ota, product_events, claim, webhooks")
            expect(page.locator("#history")).to_contain_text("user:olivia")
            shoot(page, "device")

            page.goto(setup.url + HUB)
            page.locator("#denied summary").click()
            page.locator(f'#denied tr[data-device-id="{second.device_id_hex}"]').get_by_role(
                "button", name="Re-approve"
            ).click()
            expect(page.get_by_role("status").first).to_contain_text("1 device approved")
            assert two.wait_for(Status.OK) == (Status.OK, Privilege.all())
            if os.environ.get("FLEETGATE_CONSOLE_SCREENSHOTS"):
                page.set_viewport_size({"width": 390, "height": 844})
                shoot(page, "hub-phone")


def test_a_viewer_sees_disabled_buttons_and_a_forged_post_is_refused(browser: Browser, console_setup: Setup) -> None:
    setup = console_setup
    waiting = DeviceIdentity.generate()
    setup.provision(waiting)
    with live_device(setup.served, waiting, PRODUCT) as device:
        device.wait_for(Status.QUARANTINED)
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, setup, "victor")
        row = page.locator(f'#quarantine tr[data-device-id="{waiting.device_id_hex}"]')
        approve = row.get_by_role("button", name="Approve")
        expect(approve).to_be_disabled()
        expect(approve).to_have_attribute("title", "your role (view_only) may not approve devices")
        # Forge the form the disabled button would have sent, with the page's own CSRF token.
        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
        assert csrf
        response = page.request.post(
            setup.url + f"{HUB}/approve",
            form={"csrf": csrf, "only": waiting.device_id_hex},
            headers={"Origin": setup.url},
        )
        assert response.status == 403
        assert "may not approve devices" in response.text()
        page.reload()
        expect(page.locator(f'#quarantine tr[data-device-id="{waiting.device_id_hex}"]')).to_be_visible()
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", name="Log in to Fleetgate")).to_be_visible()
    finally:
        context.close()
