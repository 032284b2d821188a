"""In Debian's Chromium against a real `fleetgate serve` and simulated devices over sockets: a
staged rollout created from the console (its devices counted first), paused and resumed, whose
bars then move to completion without a reload; and the event log showing a device's event live,
then from the store after a reload."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from firmware_sim import firmware
from firmware_sim.identity import DeviceIdentity

from .browser_support import Setup
from .conftest import PRODUCT
from .fleet_support import publish_once, running_fleet
from .test_browser_login import log_in

BASE = f"/console/products/{PRODUCT}"


def upload(setup: Setup, version: int) -> None:
    files = {"binary": (f"v{version}.bin", firmware.build(PRODUCT, version, 30_000, seed=version))}
    setup.call("POST", f"/v1/products/{PRODUCT}/firmware", data={"version": str(version), "title": f"v{version}"},
               files=files)  # fmt: skip


def members(setup: Setup, count: int) -> list[DeviceIdentity]:
    identities = [DeviceIdentity.generate() for _ in range(count)]
    for identity in identities:
        setup.provision(identity)
        setup.call("POST", f"/v1/products/{PRODUCT}/devices", json={"id": identity.device_id_hex})
    return identities


def test_a_staged_rollout_paused_resumed_and_watched_to_completion(page: Page, console_setup: Setup) -> None:
    setup = console_setup
    upload(setup, 1)
    upload(setup, 2)
    setup.call("PUT", f"/v1/products/{PRODUCT}/firmware/release", json={"version": 1, "product_default": True})
    fleet = members(setup, 4)

    log_in(page, setup, "olivia")
    page.goto(setup.url + f"{BASE}/rollouts/new")
    page.get_by_label("Firmware version").select_option("2")
    page.get_by_label("Strategy").select_option("staged")
    page.get_by_label("Stages (staged)").fill("50%")
    page.get_by_role("button", name="Show the devices it will update").click()
    expect(page.locator(".preview-count")).to_have_text("4")
    page.get_by_role("button", name="Start the rollout of version 2 to 4 device(s)").click()
    expect(page.get_by_role("status")).to_contain_text("started")

    # Its devices are offline: nothing moves yet. Paused, it offers nothing even once they connect.
    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".rollout-state")).to_contain_text("paused")
    whole = page.locator("figure.rbar.big")
    with running_fleet(setup.served, fleet, PRODUCT):
        page.wait_for_timeout(1500)
        expect(whole).to_have_attribute("data-pending", "4")
        page.get_by_role("button", name="Resume").click()
        expect(page.locator(".rollout-state")).to_contain_text("running")
        page.evaluate("window.__noReload = true")  # gone if the page reloads
        # The bars follow the rollout to the end on this very page.
        expect(whole).to_have_attribute("data-confirmed", "4", timeout=30_000)
        expect(page.locator(".rollout-state")).to_contain_text("completed")
        expect(page.locator("figure.rbar", has_text="Stage 2")).to_have_attribute("data-confirmed", "2")
        assert page.evaluate("window.__noReload") is True
        assert int(page.locator("#rollout-live").get_attribute("data-refreshed") or "0") >= 1
    page.goto(setup.url + f"{BASE}/rollouts")
    expect(page.locator("li.rollout-row").first).to_contain_text("completed")


def test_the_event_log_shows_an_event_live_then_from_history(page: Page, console_setup: Setup) -> None:
    setup = console_setup
    (device,) = members(setup, 1)
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
    expect(page.locator("[data-log-status]")).to_contain_text("1 new event queued")
    expect(page.locator("table.events tbody tr", has_text="weather/wind")).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("table.events tbody tr").first).to_contain_text("weather/wind")

    page.reload()
    expect(page.locator("table.events tbody tr")).to_have_count(2)  # from the store now
    page.get_by_label("Event name starts with").fill("weather/t")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.events tbody tr")).to_have_count(1)
    expect(page.locator("table.events tbody tr td.id")).to_have_text(device.device_id_hex)
