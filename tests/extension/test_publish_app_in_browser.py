""" "Publish as app…" in a real browser (headless Chromium), local mode: the file browser's context menu on a folder
asks for a title, the kind and the entry point, shows the service's refusal of a wrong entry point (nothing is
published), then publishes the folder as a Panel app of the user through the server extension and shows its address
and sharing controls; the app really runs (the test opens it behind the browser's back).
"""

from __future__ import annotations

import time

import pytest

from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.dashboards import APP_MARKER, PANEL_APP, app_owner, open_page
from tests.helpers.jupyterlab import spawn_in_browser, wait_for_launcher

pytestmark = pytest.mark.hub

PASSWORD = "app-browser-pw-1"
COMMAND = "polartep:publish-app"
API = "/services/platform/api/v1"


def test_publish_a_folder_as_a_panel_app_from_the_file_browser(platform, browser, request):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    name = "appbrowser"
    token = app_owner(platform, name, password=PASSWORD)
    driver = browser()
    login(driver, platform, name, PASSWORD, next_path="/hub/spawn")
    try:
        spawn_in_browser(driver, platform, name, "interactive")
        for path, body in (
            ("seaapp", {"type": "directory"}),
            ("seaapp/app.py", {"type": "file", "format": "text", "content": PANEL_APP}),
            ("seaapp/extent.csv", {"type": "file", "format": "text", "content": "day,extent\n1,13.2\n"}),
        ):
            r = platform.api("PUT", f"/user/{name}/api/contents/{path}", token, json=body)
            assert r.status_code in (200, 201), r.text
        driver.get(f"{platform.user_url(name)}lab")
        wait_for_launcher(driver)

        def folder(d):
            return next(
                (
                    e
                    for e in d.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item[data-isdir='true']")
                    if e.is_displayed() and e.text.strip().startswith("seaapp")
                ),
                None,
            )

        def publish_item(d):
            """The context menu's item; right-clicks the folder again until it is shown (the file browser may
            re-render the folder's row while JupyterLab restores its layout)."""
            items = [
                e
                for e in d.find_elements(
                    By.CSS_SELECTOR, f".lm-Menu li.lm-Menu-item[data-command='{COMMAND}']"
                )
                if e.is_displayed()
            ]
            if items:
                return items[0]
            row = folder(d)
            if row is not None:
                ActionChains(d).context_click(row).perform()
                time.sleep(0.5)
            return None

        wait_until(driver, folder, timeout=90, message="the folder in the file browser")
        try:
            item = wait_until(driver, publish_item, timeout=60, message="the context menu's item")
        except TimeoutException:
            save_screenshot(driver, request, "jupyterlab-publish-app-no-menu")
            raise
        assert item.text.strip().startswith("Publish as app")
        save_screenshot(driver, request, "jupyterlab-publish-app-menu")
        item.click()
        form = wait_until(
            driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".polartep-app-publish"), message="the form"
        )[0]
        title = form.find_element(By.CSS_SELECTOR, ".polartep-app-title")
        entry = form.find_element(By.CSS_SELECTOR, ".polartep-app-entry")
        kind = Select(form.find_element(By.CSS_SELECTOR, ".polartep-app-kind"))
        assert (title.get_attribute("value"), kind.first_selected_option.get_attribute("value")) == (
            "seaapp",
            "panel",
        )
        assert entry.get_attribute("value") == "app.py"

        # A static site needs an .html entry among its files: the service refuses, the form says why.
        kind.select_by_value("static")
        assert entry.get_attribute("value") == "index.html"
        driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()
        status = wait_until(
            driver,
            lambda d: next(
                (
                    e.find_element(By.CSS_SELECTOR, ".polartep-app-status")
                    for e in d.find_elements(By.CSS_SELECTOR, ".polartep-app-publish")
                    if e.get_attribute("data-state") == "error"
                ),
                None,
            ),
            timeout=90,
            message="the refusal",
        )
        assert "'index.html' must be one of the site's .html files" in status.text
        assert platform.api("GET", f"{API}/dashboards", token).json() == {"dashboards": []}

        form = driver.find_element(By.CSS_SELECTOR, ".polartep-app-publish")
        Select(form.find_element(By.CSS_SELECTOR, ".polartep-app-kind")).select_by_value("panel")
        title = form.find_element(By.CSS_SELECTOR, ".polartep-app-title")
        title.clear()
        title.send_keys("Sea ice app from the browser")
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
        (app,) = platform.api("GET", f"{API}/dashboards", token).json()["dashboards"]
        assert (app["title"], app["kind"]) == ("Sea ice app from the browser", "panel")
        address = sharing.find_element(By.CSS_SELECTOR, ".polartep-dashboard-url")
        assert address.text.startswith("http") and address.text.endswith(app["url"])
        save_screenshot(driver, request, "jupyterlab-publish-app")

        # The folder's files were published, and run as the Panel app.
        r = platform.api("GET", f"{API}/dashboards/{app['id']}/versions/{app['version']}/files", token)
        assert [f["path"] for f in r.json()["files"]] == ["app.py", "extent.csv"]
        server = app["server"]
        platform.wait_ready(name, server, timeout=180)
        r = open_page(platform, name, server, token, follow_redirects=True)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        assert f"{APP_MARKER}-42" in r.text
    finally:
        platform.stop_server(name)
