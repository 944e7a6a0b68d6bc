"""A Panel app in headless Chromium: a viewer it is shared with logs in, opens its URL (the hub's OAuth through the
app server's proxy), sees the app's widgets, moves the slider and the text follows (the app's Python on the server
computes it; the messages go over the websocket through the proxy). Screenshots are kept in ``build/screenshots/``.
"""

from __future__ import annotations

import pytest

from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.dashboards import APP_MARKER, PANEL_APP, app_files, app_owner, publish_app, share

pytestmark = pytest.mark.timeout(600)

PASSWORD = "a-long-enough-password-for-tests-7"

# Panel renders its components in shadow roots: collect texts and elements through them.
DEEP_TEXT = """
const parts = [];
const walk = (node) => {
  parts.push(node.textContent || "");
  node.querySelectorAll("*").forEach((element) => { if (element.shadowRoot) walk(element.shadowRoot); });
};
walk(document.body);  // not the head: the page title carries the first text too
return parts.join(" ");
"""
DEEP_FIND = """
const found = [];
const walk = (node) => {
  found.push(...node.querySelectorAll(arguments[0]));
  node.querySelectorAll("*").forEach((element) => { if (element.shadowRoot) walk(element.shadowRoot); });
};
walk(document);
return found;
"""


def test_a_viewer_moves_a_panel_slider_and_the_text_changes(platform, browser, request):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    owner = "panelowner"
    owner_token = app_owner(platform, owner)
    viewer = "panelviewer"
    platform.create_user(viewer, password=PASSWORD)
    r = publish_app(platform, owner_token, "panel", "app.py", app_files({"app.py": PANEL_APP}))
    assert r.status_code == 201, r.text
    app = r.json()
    platform.wait_ready(owner, app["server"], timeout=180)
    assert share(platform, owner_token, app["id"], user=viewer).status_code == 201

    driver = browser()
    login(driver, platform, viewer, PASSWORD)
    driver.get(platform.user_url(owner, app["server"]))
    wait_until(driver, lambda d: "oauth2/authorize" in d.current_url or "/user/" in d.current_url, timeout=60)
    if "oauth2/authorize" in driver.current_url:
        driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_until(
        driver,
        lambda d: f"{APP_MARKER}-42" in d.execute_script(DEEP_TEXT),
        timeout=120,
        message="the Panel app to render",
    )
    handle = wait_until(driver, lambda d: d.execute_script(DEEP_FIND, ".noUi-handle"), timeout=30)[0]
    save_screenshot(driver, request, "panel-app-rendered")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    wait_until(
        driver,
        lambda d: f"{APP_MARKER}-49" in d.execute_script(DEEP_TEXT),
        timeout=60,
        message="the app's callback to update the text",
    )
    save_screenshot(driver, request, "panel-app-after-slider")
