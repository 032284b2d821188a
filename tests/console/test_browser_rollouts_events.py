"""In Debian's Chromium against a real `fleetgate serve` and simulated devices over sockets: a
staged rollout created from the console (its devices counted first), paused and resumed, whose
bars then move to completion without a reload, a refusing device listed with its reason; the
event log showing a device's event live, then from the store after a reload. With
FLEETGATE_CONSOLE_SCREENSHOTS set, each page is photographed on the way (docs/console/)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from firmware_sim import firmware
from firmware_sim.identity import DeviceIdentity

from .browser_support import Setup
from .conftest import PRODUCT
from .fleet_support import publish_once, running_fleet
from .test_browser_hub import LAPTOP, shoot
from .test_browser_login import log_in

BASE = f"/console/products/{PRODUCT}"


def upload(setup: Setup, version: int, title: str) -> None:
    files = {"binary": (f"weather-{version}.bin", firmware.build(PRODUCT, version, 30_000, seed=version))}
    setup.call("POST", f"/v1/products/{PRODUCT}/firmware", data={"version": str(version), "title": title},
               files=files)  # fmt: skip


def members(setup: Setup, count: int) -> list[DeviceIdentity]:
    identities = [DeviceIdentity.generate() for _ in range(count)]
    for identity in identities:
        setup.provision(identity)
        setup.call("POST", f"/v1/products/{PRODUCT}/devices", json={"id": identity.device_id_hex})
    return identities


def test_a_staged_rollout_paused_resumed_and_watched_to_completion(page: Page, console_setup: Setup) -> None:
    setup = console_setup
    upload(setup, 1, "Station 1.0")
    upload(setup, 2, "Station 1.1: calibrated humidity")
    setup.call("PUT", f"/v1/products/{PRODUCT}/firmware/release", json={"version": 1, "product_default": True})
    fleet = members(setup, 5)
    refuser = fleet[4].device_id_hex

    page.set_viewport_size(LAPTOP)
    log_in(page, setup, "olivia")
    page.goto(setup.url + f"{BASE}/rollouts/new")
    page.get_by_label("Firmware version").select_option("2")
    page.get_by_label("Strategy").select_option("staged")
    page.get_by_label("Stages (staged)").fill("50%")
    page.get_by_label("Next stage at (fraction confirmed)").fill("0.6")
    page.get_by_label("Error threshold (fraction failed)").fill("0.5")
    page.get_by_role("button", name="Show the devices it will update").click()
    expect(page.locator(".preview-count")).to_have_text("5")
    shoot(page, "rollout-new")
    page.get_by_role("button", name="Start the rollout of version 2 to 5 device(s)").click()
    expect(page.get_by_role("status")).to_contain_text("started")

    # Its devices are offline: nothing moves yet. Paused, it offers nothing even once they connect.
    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".rollout-state")).to_contain_text("paused")
    whole = page.locator("figure.rbar.big")
    with running_fleet(setup.served, fleet, PRODUCT, refusing=frozenset({refuser})):
        page.wait_for_timeout(1500)
        expect(whole).to_have_attribute("data-pending", "5")
        shoot(page, "rollout-paused")
        page.get_by_role("button", name="Resume").click()
        expect(page.locator(".rollout-state")).to_contain_text("running")
        page.evaluate("window.__noReload = true")  # gone if the page reloads
        # The bars follow the rollout to the end on this very page.
        expect(page.locator(".rollout-state")).to_contain_text("completed", timeout=30_000)
        expect(whole).to_have_attribute("data-confirmed", "4")
        expect(whole).to_have_attribute("data-failed", "1")
        assert page.evaluate("window.__noReload") is True
        assert int(page.locator("#rollout-live").get_attribute("data-refreshed") or "0") >= 1
        failed = page.locator("table.failed tbody tr")
        expect(failed).to_have_count(1)
        expect(failed).to_contain_text(refuser)
        expect(failed).to_contain_text("refused by the device")
        shoot(page, "rollout")
    page.goto(setup.url + f"{BASE}/rollouts")
    expect(page.locator("li.rollout-row").first).to_contain_text("completed")
    shoot(page, "rollouts")

    # The completed rollout released version 2 to the product default; going back to 1 would move the four.
    page.goto(setup.url + f"{BASE}/firmware")
    expect(page.locator("tr[data-version='2'] td.released")).to_contain_text("product default")
    shoot(page, "firmware")
    page.locator("tr[data-version='1']").get_by_role("link", name="Release…").click()
    page.get_by_label("the product default").check()
    page.get_by_role("button", name="Show the devices that will update").click()
    expect(page.locator(".preview-count")).to_have_text("4")
    shoot(page, "firmware-release")
    page.goto(setup.url + f"{BASE}/audit?action=rollout_device_failed")
    expect(page.locator("table.audit tbody tr")).to_have_count(1)
    page.goto(setup.url + f"{BASE}/audit")
    shoot(page, "audit")


def test_the_event_log_shows_an_event_live_then_from_history(page: Page, console_setup: Setup) -> None:
    setup = console_setup
    (device,) = members(setup, 1)
    # A webhook for the screenshots: no network here, so its deliveries fail, each with the reason.
    hook = {"event": "weather/", "url": "https://hooks.example.com/weather", "name": "Weather archive"}
    setup.call("POST", f"/v1/products/{PRODUCT}/webhooks", json=hook)
    page.set_viewport_size(LAPTOP)
    log_in(page, setup, "victor")  # a viewer may read the log
    page.goto(setup.url + f"{BASE}/events")
    expect(page.locator("[data-log-status]")).to_have_text("live")
    hostile = b"<img src=x onerror=alert(1)> 21.5"
    publish_once(setup.served, device, PRODUCT, "weather/temp", hostile)
    row = page.locator("table.events tbody tr", has_text="weather/temp")
    expect(row).to_have_count(1)
    expect(row.locator("td.data")).to_have_text(hostile.decode())  # as text: no element was made of it
    expect(page.locator("table.events img")).to_have_count(0)

    # Paused: new events wait in a queue, then arrive on resume.
    page.get_by_role("button", name="Pause").click()
    publish_once(setup.served, device, PRODUCT, "weather/wind", b"7")
    # The webhook's hook-error answers (the device's events', published by the cloud) queue too, at
    # their own pace: one event or more, never shown while paused.
    expect(page.locator("[data-log-status]")).to_contain_text(re.compile(r"paused: \d+ new events? queued"))
    expect(page.locator("table.events tbody tr", has_text="weather/wind")).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    # The device's event, not a hook-error answer naming it: those may be stored after it, at their own pace.
    wind = page.locator("table.events tbody tr", has=page.get_by_role("cell", name="weather/wind", exact=True))
    expect(wind).to_have_count(1)
    shoot(page, "events")

    page.reload()  # from the store now (with the webhook's hook-error answers, published by the cloud)
    mine = page.locator("table.events tbody tr", has=page.locator("td.id", has_text=device.device_id_hex))
    expect(mine).to_have_count(2)
    page.get_by_label("Event name starts with").fill("weather/t")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.events tbody tr")).to_have_count(1)
    expect(page.locator("table.events tbody tr td.id")).to_have_text(device.device_id_hex)

    # The viewer's settings: what each policy means, and the controls a viewer may not use, disabled.
    page.goto(setup.url + f"{BASE}/settings")
    expect(page.get_by_role("button", name="Save policy")).to_be_disabled()
    expect(page.get_by_text("Your role (view_only) may not change the team.")).to_be_visible()
    shoot(page, "settings")
    page.get_by_role("button", name="Log out").click()
    log_in(page, setup, "olivia")
    page.goto(setup.url + f"{BASE}/webhooks")
    expect(page.locator("tr[data-webhook]")).to_have_count(1)
    shoot(page, "webhooks")
    page.get_by_role("link", name="Weather archive").click()
    expect(page.get_by_role("heading", name="Latest errors")).to_be_visible()
    shoot(page, "webhook")
