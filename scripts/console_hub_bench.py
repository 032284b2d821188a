"""Measure the web console's devices hub with 20,000 devices (docs/BENCHMARKS.md, "Console").

    python scripts/console_hub_bench.py [--devices 20000] [--runs 20] [--browser]

Starts `fleetgate serve` on a fresh data directory, pre-adds the devices through the API's import
(files of 10,000 IDs, as an operator would), denies 100 of them, logs in to the console, then
times the hub page as the server answers it (full response, median and worst of --runs) for the
default view and for the slower queries (a name search, a sort by name descending, the last page),
with its size in bytes. --browser also loads it in Debian's Chromium (Playwright) and reports the
time to the load event. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PRODUCT = 9001
PASSWORD = "benchmark password"
IMPORT_ROWS = 10_000  # the most one import takes


def start(data: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data), "--device-port", "0", "--api-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"API at (http://\S+)", line)
        if found:
            return proc, found.group(1)
    raise SystemExit("the server did not start")


def populate(api: str, token: str, devices: int) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api, headers=headers, timeout=600) as http:
        http.post("/v1/users", json={"username": "bench", "password": PASSWORD, "admin": True}).raise_for_status()
        http.post("/v1/products", json={"name": "Bench", "id": PRODUCT}).raise_for_status()
        ids = [f"{i:024x}" for i in range(1, devices + 1)]
        began = time.perf_counter()
        for chunk in range(0, devices, IMPORT_ROWS):
            text = "\n".join(ids[chunk : chunk + IMPORT_ROWS])
            http.post(f"/v1/products/{PRODUCT}/devices", files={"file": ("ids.txt", text)}).raise_for_status()
        took = time.perf_counter() - began
        for device_id in ids[:100]:
            http.request(
                "DELETE", f"/v1/products/{PRODUCT}/devices/{device_id}", json={"deny": True}
            ).raise_for_status()
        for i in range(100, devices, 97):  # some names to search and sort by (members only)
            http.put(f"/v1/products/{PRODUCT}/devices/{ids[i]}", json={"name": f"station {i}"}).raise_for_status()
    return took


def timed(http: httpx.Client, path: str, runs: int) -> tuple[float, float, int]:
    times, size = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.text[:300]
        size = len(response.content)
    return statistics.median(times), max(times), size


def browser_load(api: str, path: str, runs: int) -> float:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("--browser needs Debian's chromium: apt-get install -y chromium")
    loads = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(api + "/console/login")
        page.get_by_label("Username").fill("bench")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/console/")
        for _ in range(runs):
            page.goto(api + path, wait_until="load")
            loads.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        browser.close()
    return float(statistics.median(loads))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        proc, api = start(data)
        try:
            imported = populate(api, (data / "admin.token").read_text().strip(), args.devices)
            print(f"imported {args.devices} devices in {imported:.1f} s")
            hub = f"/console/products/{PRODUCT}/devices"
            views = {
                "default (members, page 1)": hub,
                "name search": hub + "?name=station+1",
                "sort by name, descending": hub + "?sort=name&order=desc",
                "last page": hub + f"?page={max(1, -(-(args.devices - 100) // 50))}",
                "status: all, sort by last heard": hub + "?status=all&sort=heard&order=desc",
            }
            with httpx.Client(base_url=api, timeout=60) as http:
                login = http.post(
                    "/console/login", data={"username": "bench", "password": PASSWORD}, headers={"Origin": api}
                )
                assert login.status_code == 303, login.text[:300]
                print("| view | median ms | worst ms | bytes |" + (" browser load ms |" if args.browser else ""))
                print("|---|---|---|---|" + ("---|" if args.browser else ""))
                for label, path in views.items():
                    median, worst, size = timed(http, path, args.runs)
                    row = f"| {label} | {median:.1f} | {worst:.1f} | {size:,} |"
                    if args.browser:
                        row += f" {browser_load(api, path, 5):.0f} |"
                    print(row)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
