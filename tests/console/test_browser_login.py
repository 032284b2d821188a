"""In Debian's Chromium against a real `fleetgate serve`: log in, pick the product, log out."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .browser_support import PASSWORD, Setup
from .conftest import PRODUCT


def log_in(page: Page, setup: Setup, username: str) -> None:
    page.goto(setup.url + "/")
    expect(page).to_have_url(setup.url + "/console/login?next=%2Fconsole%2F")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_log_in_pick_the_product_and_log_out(page: Page, console_setup: Setup) -> None:
    page.goto(console_setup.url + "/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong username or password")

    log_in(page, console_setup, "olivia")
    expect(page.get_by_role("heading", name="Products")).to_be_visible()
    page.get_by_role("link", name="Weather stations").click()
    expect(page).to_have_url(f"{console_setup.url}/console/products/{PRODUCT}/devices")

    page.goto(console_setup.url + "/console/")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to Fleetgate")).to_be_visible()
    page.goto(console_setup.url + "/console/")
    expect(page.get_by_role("heading", name="Log in to Fleetgate")).to_be_visible()  # the session is gone
