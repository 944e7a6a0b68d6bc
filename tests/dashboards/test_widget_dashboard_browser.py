"""A widget dashboard in headless Chromium: a viewer it is shared with logs in, opens its URL (the hub's OAuth through
the dashboard's proxy), sees live widgets, moves the slider and the output follows (the kernel runs the callback).
Screenshots are kept in ``build/screenshots/``."""

from __future__ import annotations

import pytest

from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.dashboards import notebook, publish, share

pytestmark = pytest.mark.timeout(600)

PASSWORD = "a-long-enough-password-for-tests-7"

WIDGETS = notebook(
    "import ipywidgets as widgets\n"
    "slider = widgets.IntSlider(value=3, min=0, max=10, description='n')\n"
    "square = widgets.Label(value='square=9')\n"
    "def update(change):\n"
    "    square.value = f\"square={change['new'] ** 2}\"\n"
    "slider.observe(update, names='value')\n"
    "display(slider, square)"
)


def test_a_viewer_moves_a_slider_and_the_output_changes(platform, browser, request):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    owner = "widgetowner"
    owner_token = platform.create_user(owner)
    viewer = "widgetviewer"
    platform.create_user(viewer, password=PASSWORD)
    dashboard = publish(platform, owner_token, title="Widgets", nb=WIDGETS)
    platform.wait_ready(owner, dashboard["server"], timeout=120)
    assert share(platform, owner_token, dashboard["id"], user=viewer).status_code == 201

    driver = browser()
    login(driver, platform, viewer, PASSWORD)
    driver.get(platform.user_url(owner, dashboard["server"]))
    # The hub asks a viewer once to let someone else's server identify them (JupyterHub's OAuth confirmation).
    wait_until(driver, lambda d: "oauth2/authorize" in d.current_url or "/user/" in d.current_url, timeout=60)
    if "oauth2/authorize" in driver.current_url:
        save_screenshot(driver, request, "authorize-once")
        driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_until(
        driver,
        lambda d: "square=9" in d.find_element(By.TAG_NAME, "body").text,
        timeout=90,
        message="the widgets to render",
    )
    handle = wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".noUi-handle"), timeout=30)[0]
    save_screenshot(driver, request, "widgets-rendered")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    wait_until(
        driver,
        lambda d: "square=16" in d.find_element(By.TAG_NAME, "body").text,
        timeout=30,
        message="the kernel's callback to update the label",
    )
    save_screenshot(driver, request, "widgets-after-slider")
