"""The status page in a real browser: headless Chromium (Debian's, through chromedriver and
Selenium) opens the page of a `discovery run` subprocess against the emulator and checks what a
person sees: the failed scope in red with its fix, the withheld delete with its code, the chart.

It saves a screenshot under the test's tmp dir (and, with DISCOVERY_UPDATE_SCREENSHOT=1, as
docs/status-page.png, the one the README shows). It skips only when Chromium cannot be
installed, and says so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from discovery.emulator import EmulatorThread
from tests.daemon.conftest import ACCOUNT_A, ACCOUNT_B, INTERVAL_S, base_config
from tests.harness.daemon import DaemonProcess
from tests.harness.wait import wait_until
from tests.tools import ROOT, chromium

Daemons = Callable[..., DaemonProcess]
RED = "rgba(176, 0, 32, 1)"  # .failed in discovery/output/page.py
HELD_DELETE_CODES = {"delete-guard", "empty-scope"}
EVIL = "<script>document.title='pwned'</script>"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    found = chromium()
    if isinstance(found, str):
        pytest.skip(found)
    binary, driver_path = found
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1700",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    service = Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_a_person_sees_the_failed_scope_the_withheld_delete_and_the_chart(
    daemons: Daemons,
    emulator: EmulatorThread,
    fleet: dict[str, Any],
    browser: Any,
    tmp_path: Path,
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    # A tag value anyone who can tag a proxy writes: it must show as text, never run.
    fleet["accounts"][1]["regions"]["us-east-1"]["proxies"][0]["tags"] = {
        "env": "prod",
        "TeleportDatabaseName": EVIL,
    }
    emulator.set_fleet(fleet)
    daemon = daemons(base_config())
    daemon.wait_ready()

    # One scope denied; another comes back empty with its 4 resources registered: its deletes
    # are held (by the delete guard, here: 4 of the 10 resources the cycle could touch).
    emulator.set_faults(
        [
            {
                "account": ACCOUNT_B,
                "region": "eu-west-1",
                "operation": "DescribeDBProxies",
                "code": "AccessDenied",
            }
        ]
    )
    fleet["accounts"][0]["regions"]["us-east-1"]["proxies"] = []
    emulator.set_fleet(fleet)

    def both_seen() -> bool:
        daemon.assert_running()
        last = daemon.status()["last_cycle"]
        codes = {w["code"] for w in last["withheld"]}
        return last["counts"]["scopes_failed"] == 1 and bool(codes & HELD_DELETE_CODES)

    wait_until(both_seen, timeout=6 * INTERVAL_S + 20, what="a failed scope and an empty one")
    daemon.wait_completed(5, timeout=10 * INTERVAL_S + 30)  # a few cycles for the chart

    def look() -> dict[str, Any] | None:
        # The page reloads itself every few seconds: read it at one go, again if it reloaded.
        browser.get(daemon.url + "/")
        try:
            failed = browser.find_element(By.CSS_SELECTOR, "tr.scope-failed")
            status = failed.find_element(By.CSS_SELECTOR, "td.status")
            withheld = browser.find_element(By.ID, "withheld")
            chart = browser.find_element(By.ID, "cycle-chart")
            return {
                "title": browser.title,
                "failed_row": failed.text,
                "status": status.text,
                "color": status.value_of_css_property("color"),
                "fix": failed.find_element(By.CSS_SELECTOR, ".fix").text,
                "withheld": [
                    [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                    for tr in withheld.find_elements(By.CSS_SELECTOR, "tr.withheld")
                ],
                "chart_shown": chart.is_displayed() and chart.size["width"] > 100,
                "bars": len(chart.find_elements(By.CSS_SELECTOR, "rect.bar")),
                "skipped": browser.find_element(By.ID, "skipped").text,
                "role": browser.find_element(By.ID, "role").text,
            }
        except StaleElementReferenceException:
            return None

    seen = wait_until(look, timeout=30, what="the status page to render", interval=0.2)

    assert seen["title"].startswith("rdsproxy discovery — daemon"), seen["title"]
    assert seen["status"] == "failed" and seen["color"] == RED, seen
    assert ACCOUNT_B in seen["failed_row"] and "eu-west-1" in seen["failed_row"]
    assert "AccessDenied" in seen["failed_row"]
    assert seen["fix"].startswith("fix: ") and "rds:DescribeDBProxies" in seen["fix"], seen
    empty = [row for row in seen["withheld"] if row[2] in HELD_DELETE_CODES]
    assert len(empty) == 4, seen["withheld"]
    assert all(row[1] == "delete" and f"us-east-1-{ACCOUNT_A}" in row[0] for row in empty)
    assert seen["chart_shown"] and seen["bars"] >= 2, seen
    assert seen["role"] == "leader"
    assert EVIL in seen["skipped"]  # shown as text; had it run, the title would say so
    assert "pwned" not in browser.title
    # server.status_detail: summary (the default): AWS's message (the caller's ARN) is not shown
    assert "is not authorized" not in browser.page_source

    shot = tmp_path / "status-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("DISCOVERY_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "status-page.png")
