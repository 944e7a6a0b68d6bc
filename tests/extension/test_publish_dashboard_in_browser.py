""" "Publish as dashboard" in a real browser (headless Chromium), local mode: the notebook toolbar's button asks for a
title, publishes the notebook as a dashboard of the user, then shows its stable address and the sharing controls;
sharing with a user, making a link and revoking go through the server extension to the platform service and
JupyterHub, which the test checks behind the browser's back.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.dashboards import marker_notebook
from tests.helpers.jupyterlab import spawn_in_browser

pytestmark = pytest.mark.hub

PASSWORD = "dashboard-browser-pw-1"
COMMAND = "polartep:publish-dashboard"
API = "/services/platform/api/v1"


def test_publish_a_notebook_as_a_dashboard_and_share_it(platform, new_user, browser, request):
    from selenium.webdriver.common.by import By

    name, token = new_user(plan="standard", password=PASSWORD)
    viewer, _viewer_token = new_user()
    driver = browser()
    login(driver, platform, name, PASSWORD, next_path="/hub/spawn")
    try:
        spawn_in_browser(driver, platform, name, "interactive")
        put = platform.api(
            "PUT",
            f"/user/{name}/api/contents/seaice.ipynb",
            token,
            json={"type": "file", "format": "text", "content": json.dumps(marker_notebook())},
        )
        assert put.status_code in (200, 201), put.text
        driver.get(f"{platform.user_url(name)}lab/tree/seaice.ipynb")
        wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"),
            timeout=90,
            message="the notebook",
        )
        # The File menu carries the command too.
        next(
            e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == "File"
        ).click()
        wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, f"li.lm-Menu-item[data-command='{COMMAND}']"),
            message="the File menu's item",
        )
        driver.find_element(By.TAG_NAME, "body").send_keys("\ue00c")  # Escape closes the menu

        wait_until(
            driver,
            lambda d: d.find_elements(
                By.CSS_SELECTOR, ".jp-NotebookPanel-toolbar .polartep-publish-dashboard-button"
            ),
            message="the toolbar's button",
        )[0].click()
        form = wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, ".polartep-dashboard-publish"),
            message="the form",
        )[0]
        title = form.find_element(By.CSS_SELECTOR, ".polartep-dashboard-title")
        assert title.get_attribute("value") == "seaice"
        title.clear()
        title.send_keys("Sea ice from the browser")
        form.find_element(By.CSS_SELECTOR, ".polartep-dashboard-description").send_keys("Extent, daily")
        driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()

        sharing = wait_until(
            driver,
            lambda d: next(
                (
                    e
                    for e in d.find_elements(By.CSS_SELECTOR, ".polartep-dashboard-sharing")
                    if e.get_attribute("data-shares") == "0"
                ),
                None,
            ),
            timeout=90,
            message="the sharing controls",
        )
        (dashboard,) = platform.api("GET", f"{API}/dashboards", token).json()["dashboards"]
        assert (dashboard["title"], dashboard["description"]) == ("Sea ice from the browser", "Extent, daily")
        address = sharing.find_element(By.CSS_SELECTOR, ".polartep-dashboard-url")
        # Below the hub's public address, or the owner's own origin where user content has one.
        assert address.text.startswith("http") and address.text.endswith(dashboard["url"])
        assert sharing.find_element(By.CSS_SELECTOR, ".polartep-share-none").text == "Only you"

        sharing.find_element(By.CSS_SELECTOR, ".polartep-share-user").send_keys(viewer)
        sharing.find_element(By.CSS_SELECTOR, ".polartep-share-user-button").click()
        wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, f"li.polartep-share[data-name='{viewer}']"),
            timeout=60,
            message="the viewer in the list",
        )
        shares = platform.api("GET", f"{API}/dashboards/{dashboard['id']}/shares", token).json()["shares"]
        assert [(s["kind"], s["name"]) for s in shares] == [("user", viewer)]

        # A user who does not exist: the service's refusal is shown, nothing is shared.
        field = sharing.find_element(By.CSS_SELECTOR, ".polartep-share-user")
        field.clear()
        field.send_keys("nosuchuser")
        sharing.find_element(By.CSS_SELECTOR, ".polartep-share-user-button").click()
        wait_until(
            driver,
            lambda d: sharing.get_attribute("data-state") == "error",
            timeout=60,
            message="the refusal",
        )
        assert sharing.find_element(By.CSS_SELECTOR, ".polartep-dashboard-status").text != ""

        sharing.find_element(By.CSS_SELECTOR, ".polartep-share-link-button").click()
        link = wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, ".polartep-share-link-url"),
            timeout=60,
            message="the link",
        )[0]
        assert "accept-share" in link.get_attribute("href")
        save_screenshot(driver, request, "jupyterlab-publish-dashboard-sharing")

        sharing.find_element(
            By.CSS_SELECTOR, f"li.polartep-share[data-name='{viewer}'] .polartep-share-revoke"
        ).click()
        wait_until(
            driver,
            lambda d: not d.find_elements(By.CSS_SELECTOR, f"li.polartep-share[data-name='{viewer}']"),
            timeout=60,
            message="the viewer gone from the list",
        )
        shares = platform.api("GET", f"{API}/dashboards/{dashboard['id']}/shares", token).json()["shares"]
        assert viewer not in [s["name"] for s in shares]
    finally:
        platform.stop_server(name)
