"""JupyterLab in the test browser: wait for the launcher, open the Polar TEP panel and read what it shows.

Used by the extension's browser tests (local and Docker mode) and by ``bench/lab_load.py``. Selectors are the
plugin's own (``extensions/src/index.ts``): the panel ``#polartep-panel`` (``data-state`` is ``loaded`` or
``error`` once the server extension answered), its fields ``.polartep-plan`` / ``-profile`` / ``-period`` and the
status-bar item ``.polartep-status``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.helpers.browser import wait_until

LAUNCHER = ".jp-Launcher"
PANEL_TAB = "li.lm-TabBar-tab[data-id='polartep-panel']"
PANEL = "#polartep-panel"


@dataclass(frozen=True)
class PanelView:
    """What the Polar TEP panel and status-bar item show."""

    state: str
    user: str
    plan: str
    plan_name: str
    profile: str
    period: str
    message: str
    status_bar: str


def wait_for_launcher(driver, timeout: float = 90) -> None:
    """Until JupyterLab shows its launcher (the end of a first load)."""
    from selenium.webdriver.common.by import By

    wait_until(
        driver,
        lambda d: any(e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, LAUNCHER)),
        timeout=timeout,
        message="JupyterLab's launcher",
    )


def open_polartep_panel(driver, timeout: float = 60) -> PanelView:
    """Click the Polar TEP tab in the left sidebar and read the panel once the extension has answered."""
    from selenium.webdriver.common.by import By

    tab = wait_until(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, PANEL_TAB),
        timeout=timeout,
        message="the Polar TEP tab",
    )[0]
    tab.click()
    panel = wait_until(
        driver,
        lambda d: next(
            (
                e
                for e in d.find_elements(By.CSS_SELECTOR, PANEL)
                if e.get_attribute("data-state") and e.is_displayed()
            ),
            None,
        ),
        timeout=timeout,
        message="the Polar TEP panel to show the service's answer",
    )

    def text(selector: str) -> str:
        return panel.find_element(By.CSS_SELECTOR, selector).text.strip()

    status = driver.find_elements(By.CSS_SELECTOR, ".polartep-status")
    return PanelView(
        state=panel.get_attribute("data-state"),
        user=text(".polartep-user"),
        plan=panel.find_element(By.CSS_SELECTOR, ".polartep-plan").get_attribute("data-plan") or "",
        plan_name=text(".polartep-plan"),
        profile=text(".polartep-profile"),
        period=text(".polartep-period"),
        message=panel.find_element(By.CSS_SELECTOR, ".polartep-message").get_attribute("textContent").strip(),
        status_bar=status[0].text.strip() if status else "",
    )


def spawn_in_browser(driver, platform, user: str, profile: str, timeout: float = 120) -> None:
    """Pick ``profile`` on the hub's spawn page, start, and wait for JupyterLab's launcher."""
    from selenium.webdriver.common.by import By

    driver.get(f"{platform.url}/hub/spawn")
    driver.find_element(By.CSS_SELECTOR, f"input[name=profile][value='{profile}']").click()
    driver.find_element(By.CSS_SELECTOR, "#spawn_form [type=submit], form [type=submit]").click()
    wait_until(driver, lambda d: f"/user/{user}/lab" in d.current_url, timeout=timeout, message="JupyterLab")
    wait_for_launcher(driver, timeout)
