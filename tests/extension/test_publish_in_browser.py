""" "Publish as processor" in a real browser (headless Chromium), local mode: the File menu command opens the dialog
with the definition inferred from the notebook, the service's field-by-field check shows live as the JSON is edited,
and Publish makes version 1 of the processor.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.jupyterlab import spawn_in_browser
from tests.helpers.processor_registry import notebook_bytes

pytestmark = pytest.mark.hub

PASSWORD = "publish-browser-pw-1"
COMMAND = "polartep:publish-processor"


def _set_definition(driver, element, document: dict) -> None:
    driver.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
        element,
        json.dumps(document, indent=2),
    )


def _state(driver, by, wanted: str):
    return wait_until(
        driver,
        lambda d: next(
            (
                e
                for e in d.find_elements(by.CSS_SELECTOR, ".polartep-publish")
                if e.get_attribute("data-state") == wanted
            ),
            None,
        ),
        timeout=60,
        message=f"the dialog's check to say {wanted}",
    )


def test_publish_a_notebook_from_the_file_menu(platform, new_user, browser, request):
    from selenium.webdriver.common.by import By

    name, token = new_user(plan="standard", password=PASSWORD)
    driver = browser()
    login(driver, platform, name, PASSWORD, next_path="/hub/spawn")
    try:
        spawn_in_browser(driver, platform, name, "interactive")
        put = platform.api(
            "PUT",
            f"/user/{name}/api/contents/extent.ipynb",
            token,
            json={"type": "file", "format": "text", "content": notebook_bytes().decode()},
        )
        assert put.status_code in (200, 201), put.text
        driver.get(f"{platform.user_url(name)}lab/tree/extent.ipynb")
        wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"),
            timeout=90,
            message="the notebook",
        )
        file_menu = next(
            e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == "File"
        )
        file_menu.click()
        wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, f"li.lm-Menu-item[data-command='{COMMAND}']"),
            message="the menu item",
        )[0].click()

        dialog = _state(driver, By, "valid")
        textarea = dialog.find_element(By.CSS_SELECTOR, "textarea")
        draft = json.loads(textarea.get_attribute("value"))
        assert (draft["id"], draft["inputs"]["days"]) == ("extent", {"type": "integer", "default": 30})

        draft["id"], draft["timeout"] = f"browser-{name}", 1
        _set_definition(driver, textarea, draft)
        dialog = _state(driver, By, "invalid")
        problems = [li.text for li in dialog.find_elements(By.CSS_SELECTOR, ".polartep-publish-problems li")]
        assert problems == ["timeout: must be at least 10"]
        save_screenshot(driver, request, "jupyterlab-publish-processor-invalid")

        draft["timeout"] = 600
        _set_definition(driver, textarea, draft)
        _state(driver, By, "valid")
        driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()
        done = wait_until(
            driver,
            lambda d: next(
                (
                    e
                    for e in d.find_elements(By.CSS_SELECTOR, ".jp-Dialog-content")
                    if "Processor published" in e.text
                ),
                None,
            ),
            timeout=60,
            message="the published message",
        )
        assert f"browser-{name} 0.1.0 is published (version 1)." in done.text
    finally:
        platform.stop_server(name)

    got = platform.api("GET", f"/services/platform/api/v1/processors/browser-{name}", token).json()
    assert (got["version"], got["owner"], got["definition"]["timeout"]) == ("0.1.0", name, 600)
