"""Every page of the platform service, in headless Chromium through the real proxy and hub, in light and dark.

Specification: each page loads the hub's stylesheet from ``/hub/static/`` on the same origin (the stylesheet's rules
are readable, so it really loaded under the page's CSP), the theme script runs (it is allowed by its hash) and sets
``data-bs-theme`` from the user's system preference, and the page's background follows it. A theme chosen with the
hub's own toggle on a hub page carries over to the service's pages. Screenshots of each page in each theme are kept
in ``build/screenshots/<test name>/<page>-<theme>.png`` (beside them: the hub's home page, for comparison).
"""

from __future__ import annotations

import pytest

from tests.harness import ADMIN_PASSWORD
from tests.helpers.browser import login, save_screenshot, set_color_scheme, wait_until

pytestmark = pytest.mark.hub

SERVICE = "/services/platform/"
PASSWORD = "screenshot-pw-1"


def _page_state(driver) -> dict:
    """What the test checks on a loaded page, read in the browser."""
    return driver.execute_script(
        """
        const sheets = [...document.styleSheets].filter(s => s.href && s.href.includes('/hub/static/css/style.min.css'));
        let rules = 0;
        try { rules = sheets.length ? sheets[0].cssRules.length : 0; } catch (e) { rules = -1; }
        const background = getComputedStyle(document.body).backgroundColor;
        const rgb = background.match(/\\d+/g).slice(0, 3).map(Number);
        return {
            theme: document.documentElement.getAttribute('data-bs-theme'),
            hubRules: rules,
            brightness: (rgb[0] + rgb[1] + rgb[2]) / 3,
            navbar: !!document.querySelector('nav.navbar'),
            h1: (document.querySelector('h1') || {}).textContent || '',
        };
        """
    )


def _click(driver, element) -> None:
    """Click as the user would after scrolling to it (a tall form's button may sit below the window)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", element)


def _check_and_keep(driver, request, url: str, name: str, scheme: str, heading: str) -> None:
    driver.get(url)
    _check_loaded(driver, request, name, scheme, heading)


def _check_loaded(driver, request, name: str, scheme: str, heading: str) -> None:
    wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete", message=name)
    state = _page_state(driver)
    save_screenshot(driver, request, f"{name}-{scheme}")
    assert state["navbar"], f"{name}: no navigation bar"
    assert state["hubRules"] > 100, f"{name}: the hub's stylesheet did not load ({state})"
    assert state["theme"] == scheme, f"{name}: theme {state['theme']!r}, system prefers {scheme}"
    if scheme == "dark":
        assert state["brightness"] < 80, f"{name}: background too bright for dark ({state})"
    else:
        assert state["brightness"] > 200, f"{name}: background too dark for light ({state})"
    assert heading in state["h1"], f"{name}: heading {state['h1']!r}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_public_pages_look_like_the_hub(platform, browser, request, scheme):
    from selenium.webdriver.common.by import By

    driver = browser(1280, 1000)
    set_color_scheme(driver, scheme)
    base = platform.url + SERVICE
    _check_and_keep(driver, request, platform.url + "/hub/login", "hub-login", scheme, "")  # for comparison
    _check_and_keep(driver, request, base + "signup", "signup", scheme, "Sign up")
    _check_and_keep(driver, request, base + "legal/terms", "terms", scheme, "terms and conditions")
    _check_and_keep(driver, request, base + "legal/privacy", "privacy", scheme, "privacy statement")
    _check_and_keep(driver, request, base + "legal/cookies", "no-such-document", scheme, "No such document")

    # A sign-up with problems: each message beside its field.
    driver.get(base + "signup")
    name = f"shot{scheme}"
    for field, value in (
        ("username", name),
        ("password", "a-long-password-1"),
        ("password_confirm", "another-password-2"),
        ("full_name", "Screen Shot"),
        ("email", "shot@polar"),
        ("organisation", "Polar Lab"),
        ("organisation_location", "Tromsø, Norway"),
    ):
        driver.find_element(By.ID, field).send_keys(value)
    _click(driver, driver.find_element(By.ID, "accept_terms"))
    _click(driver, driver.find_element(By.CSS_SELECTOR, "form [type=submit]"))
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".field-error"), message="the field errors")
    errors = {e.get_attribute("id") for e in driver.find_elements(By.CSS_SELECTOR, ".field-error")}
    assert errors == {"email-error", "password_confirm-error", "accept_privacy-error"}
    driver.execute_script("document.getElementById('password_confirm').scrollIntoView({block: 'center'})")
    save_screenshot(driver, request, f"signup-problems-{scheme}")

    # Corrected: the sign-up is received.
    driver.find_element(By.ID, "password").send_keys("a-long-password-1")
    driver.find_element(By.ID, "password_confirm").send_keys("a-long-password-1")
    email = driver.find_element(By.ID, "email")
    email.clear()
    email.send_keys("shot@polar.example")
    assert driver.find_element(By.ID, "accept_terms").is_selected()  # kept as ticked
    _click(driver, driver.find_element(By.ID, "accept_privacy"))
    _click(driver, driver.find_element(By.CSS_SELECTOR, "form [type=submit]"))
    wait_until(driver, lambda d: "Sign-up received" in d.title, message="the sign-up to be received")
    _check_loaded(driver, request, "signup-received", scheme, "Sign-up received")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_user_pages_look_like_the_hub(platform, new_user, browser, request, scheme):
    name, _ = new_user(password=PASSWORD, accept_terms=False)
    driver = browser(1280, 1000)
    set_color_scheme(driver, scheme)
    login(driver, platform, name, PASSWORD)
    base = platform.url + SERVICE
    _check_and_keep(driver, request, platform.url + "/hub/home", "hub-home", scheme, "")
    _check_and_keep(driver, request, base + "consent?next=/hub/home", "consent", scheme, "Terms and privacy")
    _check_and_keep(driver, request, base + "account", "account", scheme, "Your account")
    _check_and_keep(
        driver, request, base + "admin/accounts", "administrators-only", scheme, "Administrators only"
    )

    # Account problems beside their field.
    from selenium.webdriver.common.by import By

    driver.get(base + "account")
    for field, value in (
        ("full_name", "Screen Shot"),
        ("organisation", "Polar Lab"),
        ("organisation_location", "Tromsø, Norway"),
        ("email", "not-an-address@x"),  # valid to the browser, not to the service (no dot in the domain)
    ):
        driver.find_element(By.ID, field).clear()
        driver.find_element(By.ID, field).send_keys(value)
    _click(driver, driver.find_element(By.CSS_SELECTOR, "form[action$='account/details'] [type=submit]"))
    wait_until(driver, lambda d: d.find_elements(By.ID, "email-error"), message="the e-mail's error")
    driver.execute_script("document.getElementById('email').scrollIntoView({block: 'center'})")
    save_screenshot(driver, request, f"account-problems-{scheme}")

    # Erasure: the confirmation page.
    driver.get(base + "account")
    driver.find_element(By.ID, "confirm").send_keys(name)
    _click(driver, driver.find_element(By.CSS_SELECTOR, "form[action$='account/erase'] [type=submit]"))
    wait_until(driver, lambda d: "erased" in d.title, timeout=60, message="the erasure")
    _check_loaded(driver, request, "account-erased", scheme, "erased")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_admin_pages_look_like_the_hub(platform, new_user, browser, request, scheme):
    name, _ = new_user(plan="trial")
    driver = browser(1280, 1000)
    set_color_scheme(driver, scheme)
    login(driver, platform, "admin", ADMIN_PASSWORD)
    base = platform.url + SERVICE
    _check_and_keep(
        driver, request, base + "admin/signups", "admin-signups", scheme, "Sign-ups awaiting approval"
    )
    _check_and_keep(driver, request, base + "admin/accounts", "admin-accounts", scheme, "Accounts")
    _check_and_keep(
        driver, request, base + f"admin/accounts/{name}", "admin-account", scheme, f"Account {name}"
    )


def test_a_theme_chosen_on_the_hub_carries_over_to_the_service_pages(platform, new_user, browser, request):
    from selenium.webdriver.common.by import By

    name, _ = new_user(password=PASSWORD)
    driver = browser()
    set_color_scheme(driver, "light")
    login(driver, platform, name, PASSWORD)
    driver.get(platform.url + "/hub/home")
    _click(driver, driver.find_element(By.ID, "dark-theme-toggle"))  # the hub's own toggle (its darkmode.js)
    wait_until(driver, lambda d: _page_state(d)["theme"] == "dark", message="the hub to turn dark")
    driver.get(platform.url + SERVICE + "account")
    assert _page_state(driver)["theme"] == "dark"
    # And back, with the service page's toggle: the hub follows.
    _click(driver, driver.find_element(By.ID, "dark-theme-toggle"))
    assert _page_state(driver)["theme"] == "light"
    driver.get(platform.url + "/hub/home")
    assert _page_state(driver)["theme"] == "light"
    save_screenshot(driver, request, "hub-home-after-service-toggle")
