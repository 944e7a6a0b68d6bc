"""A person logs in through the hub's login page in a real browser (headless Chromium) and reaches the spawn page.

This is the browser fixture's own specification: later browser tests (extension panel, page looks, origins) build
on the same login.
"""

from __future__ import annotations

import pytest

from tests.helpers.browser import login, save_screenshot, wait_until

pytestmark = pytest.mark.hub


def test_a_user_logs_in_in_chromium_and_sees_the_profiles_of_their_plan(platform, new_user, browser, request):
    from selenium.webdriver.common.by import By

    name, _ = new_user(plan="trial", password="browser-login-pw-1")
    driver = browser()
    login(driver, platform, name, "browser-login-pw-1", next_path="/hub/spawn")

    wait_until(driver, lambda d: "/hub/spawn" in d.current_url, message="the spawn page")
    labels = {e.get_attribute("value") for e in driver.find_elements(By.CSS_SELECTOR, "input[name=profile]")}
    save_screenshot(driver, request, "spawn-page")
    assert labels == {"interactive", "small", "medium"}, driver.page_source[:2000]


def test_a_wrong_password_keeps_the_browser_on_the_login_page(platform, new_user, browser):
    name, _ = new_user(password="browser-login-pw-2")
    driver = browser()
    with pytest.raises(AssertionError, match="refused: Invalid username or password"):
        login(driver, platform, name, "not-the-password")
    assert "/hub/login" in driver.current_url
