"""This month's usage in a real browser (headless Chromium), local mode: the hub's home page and JupyterLab.

Specification: a Trial user who has used 410 of 500 CPU-hours sees, on the hub's home page, "410.xx of 500.00
CPU-hours used, 89.xx left", the 80% notice and one bar per day of the month so far; in JupyterLab the status-bar
meter says "CPU-h 410.x used · 89.x left" and the panel's "Usage this month" section shows the notice, the three
storage classes of the catalogue and the per-day chart. Screenshots of both are kept.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tests.harness import wait_for
from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.jupyterlab import open_polartep_panel, spawn_in_browser, wait_for_launcher
from tests.helpers.quota import spend

pytestmark = pytest.mark.hub

PASSWORD = "usage-browser-pw-1"


def test_the_home_page_and_jupyterlab_show_this_months_usage(platform, new_user, browser, request):
    from selenium.webdriver.common.by import By

    name, token = new_user(plan="trial", password=PASSWORD)
    spend(platform, name, 410)
    driver = browser()
    login(driver, platform, name, PASSWORD, next_path="/hub/spawn")
    try:
        spawn_in_browser(driver, platform, name, "small")
        # The enforcement pass writes the 80% notice once the server runs (every meter interval).
        wait_for(
            lambda: platform.api(
                "GET", f"/services/platform/api/v1/users/{name}/notifications", token
            ).json()["notifications"],
            60,
            interval=0.5,
            what="the 80% notice",
        )
        driver.refresh()
        wait_for_launcher(driver)
        open_polartep_panel(driver)
        section = wait_until(
            driver,
            lambda d: next(
                (
                    e
                    for e in d.find_elements(By.CSS_SELECTOR, ".polartep-usage")
                    if e.get_attribute("data-state")
                ),
                None,
            ),
            timeout=60,
            message="the usage section",
        )
        save_screenshot(driver, request, "jupyterlab-usage-section")
        assert section.get_attribute("data-state") == "loaded"
        meter = driver.find_element(By.CSS_SELECTOR, ".polartep-usage-meter").text
        assert re.fullmatch(r"CPU-h 410\.\d used · (89\.\d|90\.0) left", meter), meter  # one decimal
        notices = section.find_elements(By.CSS_SELECTOR, ".polartep-usage-notices li")
        assert [n.get_attribute("data-threshold") for n in notices] == ["80"]
        assert notices[0].text.startswith("You have used 80% of your CPU-hours: 410.")
        storage = [
            e.get_attribute("data-storage-class") for e in section.find_elements(By.CSS_SELECTOR, "dd")
        ]
        assert storage == ["ssd", "hdd", "object"]
        days = section.find_elements(By.CSS_SELECTOR, ".polartep-usage-day")
        assert len(days) == datetime.now(UTC).day

        driver.get(f"{platform.url}/hub/home")
        box = wait_until(
            driver,
            lambda d: next(
                (
                    e
                    for e in d.find_elements(By.ID, "polartep-usage")
                    if e.get_attribute("data-state") != "loading"
                ),
                None,
            ),
            timeout=30,
            message="the home page's usage",
        )
        save_screenshot(driver, request, "hub-home-usage")
        assert box.get_attribute("data-state") == "loaded"
        line = box.find_element(By.CSS_SELECTOR, ".polartep-usage-line").text
        assert re.fullmatch(
            r"410\.\d\d of 500\.00 CPU-hours used, (89\.\d\d|90\.00) left \(renews \d{4}-\d\d-01\)\.", line
        ), line
        home_notices = box.find_elements(By.CSS_SELECTOR, ".polartep-notice")
        assert [n.get_attribute("data-threshold") for n in home_notices] == ["80"]
        assert len(box.find_elements(By.CSS_SELECTOR, ".polartep-day")) == datetime.now(UTC).day
    finally:
        platform.stop_server(name)
