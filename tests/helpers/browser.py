"""Headless Chromium through Selenium for browser tests: Debian's ``chromium`` and ``chromium-driver``, nothing
downloaded.

Rules this module guarantees:

* The browser is the system's ``/usr/bin/chromium`` driven by ``/usr/bin/chromedriver`` (paths overridable with
  ``POLARTEP_CHROMIUM`` / ``POLARTEP_CHROMEDRIVER``); Selenium Manager is never asked to fetch a driver.
* The browser resolves only loopback names: every host name except ``localhost``, ``*.localhost`` and
  ``127.0.0.1`` is mapped to "not found", and background networking is off, so a page can never make the
  browser send traffic off this machine. (Chromium resolves ``*.localhost`` to 127.0.0.1 by itself, which the
  per-user origin tests rely on.)
* Each test gets a fresh profile (an empty user-data folder), so no cookie or cache leaks between tests.
* Screenshots land in ``build/screenshots/<test name>/`` (or ``POLARTEP_SCREENSHOT_DIR``); when a test that used a
  browser fails, a screenshot and the page source of every open browser are saved there too.
* In CI (``CI=true``) a missing Chromium is a failure; elsewhere the browser tests skip with the reason.

Use: the ``browser`` fixture is a factory, ``driver = browser()``; ``login(driver, platform, name, password)``
logs in through the hub's real login form; ``set_color_scheme(driver, "dark")`` emulates the user's preference;
``save_screenshot(driver, request, "page-light")`` keeps an artefact.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polartep_hub.settings import REPO_ROOT

CHROMIUM = os.environ.get("POLARTEP_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("POLARTEP_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOT_ROOT = Path(os.environ.get("POLARTEP_SCREENSHOT_DIR", REPO_ROOT / "build" / "screenshots"))
INSTALL_HINT = (
    "install Debian's chromium and chromium-driver (make test-deps does) and selenium (the test extra)"
)

# Loopback only: anything else does not resolve, so no page can make the browser reach another machine.
HOST_RULES = "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE *.localhost, EXCLUDE 127.0.0.1"


def browser_problem() -> str | None:
    """Why no browser test can run here, or None when Chromium, its driver and Selenium are all present."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        return f"{', '.join(missing)} not found: {INSTALL_HINT}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed: {INSTALL_HINT}"
    return None


def chromium_options(user_data_dir: str, width: int = 1280, height: int = 900):
    """The flags every test browser runs with (headless, no sandbox since CI runs as root, no background traffic)."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        "--no-first-run",
        "--no-default-browser-check",
        "--metrics-recording-only",
        f"--host-resolver-rules={HOST_RULES}",
        f"--user-data-dir={user_data_dir}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    return options


def new_driver(user_data_dir: str, width: int = 1280, height: int = 900):
    """A Selenium Chrome driver on the system's Chromium and chromedriver."""
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(
        service=Service(executable_path=CHROMEDRIVER), options=chromium_options(user_data_dir, width, height)
    )
    driver.set_page_load_timeout(60)
    return driver


def screenshot_dir(request: pytest.FixtureRequest) -> Path:
    """``build/screenshots/<test node name>/``, created on demand."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])[:120]
    path = SCREENSHOT_ROOT / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_screenshot(driver, request: pytest.FixtureRequest, name: str) -> Path:
    """Save a PNG of the browser's viewport as ``<screenshot dir>/<name>.png`` and return its path."""
    path = screenshot_dir(request) / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def set_color_scheme(driver, scheme: str) -> None:
    """Emulate the user's ``prefers-color-scheme`` (``light`` or ``dark``) for the pages loaded next."""
    if scheme not in ("light", "dark"):
        raise ValueError("scheme must be 'light' or 'dark'")
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
    )


def wait_until(driver, condition: Callable, timeout: float = 30, message: str = ""):
    """Selenium's explicit wait: ``condition(driver)`` until truthy; TimeoutException names ``message``. An element
    that JupyterLab re-rendered while the condition looked at it (stale) counts as "not yet", and is asked again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(condition, message)


def login(driver, platform, username: str, password: str, next_path: str | None = None) -> None:
    """Log in through the hub's own login form, as a person would; fails with the page's message if refused."""
    from selenium.webdriver.common.by import By

    url = f"{platform.url}/hub/login"
    if next_path:
        url += f"?next={next_path}"
    driver.get(url)
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_until(
        driver,
        lambda d: "/hub/login" not in d.current_url or d.find_elements(By.CSS_SELECTOR, ".login_error"),
        message=f"login of {username} to finish",
    )
    if "/hub/login" in driver.current_url:
        errors = driver.find_elements(By.CSS_SELECTOR, ".login_error")
        raise AssertionError(f"login of {username} refused: {' '.join(e.text for e in errors)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


def pytest_collection_modifyitems(items):
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_available() -> None:
    problem = browser_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"Browser tests must run in CI, but: {problem}", pytrace=False)
    message = f"BROWSER TESTS SKIPPED: {problem}"
    warnings.warn(message, stacklevel=1)
    pytest.skip(message)


@pytest.fixture
def browser(browser_available, request) -> Iterator[Callable[..., object]]:
    """A factory of fresh headless Chromium drivers: ``driver = browser()`` (``width``/``height`` optional).

    Every driver is quit at the end of the test; if the test failed, each leaves a screenshot and its page source.
    """
    drivers = []
    profiles = []
    for stale in SCREENSHOT_ROOT.glob(f"{screenshot_dir(request).name}/failure-*"):
        stale.unlink()  # from an earlier failed run of this test

    def make(width: int = 1280, height: int = 900):
        profile = tempfile.mkdtemp(prefix="polartep-chromium-")
        profiles.append(profile)
        driver = new_driver(profile, width, height)
        drivers.append(driver)
        return driver

    try:
        yield make
    finally:
        failed = request.node.stash.get(_CALL_FAILED, False)
        for number, driver in enumerate(drivers):
            try:
                if failed:
                    folder = screenshot_dir(request)
                    driver.save_screenshot(str(folder / f"failure-{number}.png"))
                    (folder / f"failure-{number}.html").write_text(driver.page_source)
            except Exception as error:  # a dead browser must not hide the test's own failure
                print(f"could not keep the failure screenshot: {error}")
            finally:
                driver.quit()
        for profile in profiles:
            shutil.rmtree(profile, ignore_errors=True)
