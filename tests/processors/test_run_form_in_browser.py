"""The generated run form in a real browser (headless Chromium), local mode, real hub, service, gateway and server.

Specification:
* JupyterLab: a notebook published from the File menu appears in the processors panel; its form has one field per
  input with the defaults filled; a value the service refuses (a bounding box with south above north) is shown beside
  its field; a changed input runs, the run view's progress reaches the end (cells done = total) with the log, and
  "Open output notebook" opens the executed notebook in JupyterLab showing the injected value.
* JupyterLab, versions and cancel: with versions 1.0.0 and 2.0.0 published, the form opens on 2.0.0 (its default
  shown), the version selector loads 1.0.0's form (its own default), the run started from it records version 1.0.0;
  the run view's Cancel button stops the run's kernel and the view shows ``dismissed``.
* The service's page: the same processor's form at its stable URL shows the service's 400 beside the field, then a
  good form redirects to the run's page, which reloads itself until the run succeeded and links to the results.
Screenshots go to ``build/screenshots/<test>/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.jupyterlab import spawn_in_browser
from tests.helpers.processor_registry import definition, notebook_bytes, publish_body
from tests.helpers.processors import create_processor, echo_notebook, notebook

pytestmark = pytest.mark.hub

PASSWORD = "run-form-browser-pw-1"  # noqa: S105 (throw-away test platform)
PUBLISH = "polartep:publish-processor"
BODY = 'print(f"the run got days={days} and threshold={threshold}")\n'


def _publish_from_the_file_menu(driver, By, processor: str) -> None:
    file_menu = next(
        e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == "File"
    )
    file_menu.click()
    wait_until(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, f"li.lm-Menu-item[data-command='{PUBLISH}']"),
        message="the menu item",
    )[0].click()
    dialog = wait_until(
        driver,
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, ".polartep-publish[data-state='valid']")), None
        ),
        timeout=60,
        message="the publish dialog's draft to be valid",
    )
    textarea = dialog.find_element(By.CSS_SELECTOR, "textarea")
    draft = json.loads(textarea.get_attribute("value"))
    draft["id"] = processor
    driver.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
        textarea,
        json.dumps(draft, indent=2),
    )
    wait_until(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, ".polartep-publish[data-state='valid']"),
        timeout=60,
        message="the edited definition to be valid",
    )
    driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()
    wait_until(
        driver,
        lambda d: any(
            "Processor published" in e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-Dialog-content")
        ),
        timeout=60,
        message="the published message",
    )
    driver.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()


def test_publish_then_run_from_the_generated_form_and_open_the_output_notebook(
    platform, new_user, browser, request
):
    from selenium.webdriver.common.by import By

    name, token = new_user(plan="trial", password=PASSWORD)
    processor = f"formrun-{name}"
    driver = browser()
    login(driver, platform, name, PASSWORD, next_path="/hub/spawn")
    try:
        spawn_in_browser(driver, platform, name, "interactive")
        put = platform.api(
            "PUT",
            f"/user/{name}/api/contents/extent.ipynb",
            token,
            json={"type": "file", "format": "text", "content": notebook_bytes(body=BODY).decode()},
        )
        assert put.status_code in (200, 201), put.text
        driver.get(f"{platform.user_url(name)}lab/tree/extent.ipynb")
        wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"),
            timeout=90,
            message="the notebook",
        )
        _publish_from_the_file_menu(driver, By, processor)

        wait_until(
            driver,
            lambda d: d.find_elements(
                By.CSS_SELECTOR, "li.lm-TabBar-tab[data-id='polartep-processors-panel']"
            ),
            message="the processors tab",
        )[0].click()
        # The panel refreshed itself after the publish (no click on Refresh).
        wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, f"li[data-processor='{processor}'] button"),
            timeout=30,
            message="the published processor in the panel",
        )[0].click()
        form = wait_until(
            driver,
            lambda d: next(
                iter(d.find_elements(By.CSS_SELECTOR, ".polartep-run-form[data-state='form']")), None
            ),
            timeout=60,
            message="the run form",
        )
        fields = {
            e.get_attribute("data-name"): e for e in form.find_elements(By.CSS_SELECTOR, ".polartep-field")
        }
        assert list(fields) == ["threshold", "days", "start", "region", "smooth", "area", "years", "label"]
        widgets = {key: e.get_attribute("data-widget") for key, e in fields.items()}
        assert widgets == {
            "threshold": "number", "days": "number", "start": "date", "region": "text", "smooth": "checkbox",
            "area": "bbox", "years": "list", "label": "text",
        }  # fmt: skip
        days = form.find_element(By.ID, "polartep-run-days")
        assert days.get_attribute("value") == "30"
        assert "sea-ice concentration threshold, percent" in fields["threshold"].text

        # South above north: only the service refuses it, and its 400 shows beside the field.
        south, north = fields["area"].find_elements(By.CSS_SELECTOR, "input")[1::2]
        south.clear()
        south.send_keys("85")
        north.clear()
        north.send_keys("70")
        form.find_element(By.CSS_SELECTOR, ".polartep-run-submit").click()
        wait_until(
            driver,
            lambda d: fields["area"].find_element(By.CSS_SELECTOR, ".polartep-field-error").text,
            timeout=30,
            message="the service's refusal beside the bbox",
        )
        assert fields["area"].find_element(By.CSS_SELECTOR, ".polartep-field-error").text == (
            "south must not be greater than north"
        )
        save_screenshot(driver, request, "jupyterlab-run-form-refused")

        south.clear()
        south.send_keys("60")
        north.clear()
        north.send_keys("90")
        days.clear()
        days.send_keys("7")
        form.find_element(By.CSS_SELECTOR, ".polartep-run-submit").click()
        run = wait_until(
            driver,
            lambda d: next(
                iter(d.find_elements(By.CSS_SELECTOR, ".polartep-run[data-status='successful']")), None
            ),
            timeout=240,
            message="the run to succeed",
        )
        progress = run.find_element(By.CSS_SELECTOR, ".polartep-run-progress").text
        done, total = progress.removesuffix(" cells done").split(" / ")
        assert done == total and int(total) >= 2
        assert (
            "the run got days=7 and threshold=15"
            in run.find_element(By.CSS_SELECTOR, ".polartep-run-log").text
        )
        save_screenshot(driver, request, "jupyterlab-run-successful")

        run.find_element(By.CSS_SELECTOR, ".polartep-open-notebook").click()
        # Read in the page (the notebook re-renders its cells while it opens, so element handles go stale).
        shown = (
            "return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')]"
            ".map(cell => cell.textContent).join(' ')"
        )
        wait_until(
            driver,
            lambda d: "days = 7" in d.execute_script(shown),
            timeout=60,
            message="the output notebook with the injected value",
        )
        current = driver.find_element(By.CSS_SELECTOR, ".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
        assert current.text.strip() == "output.ipynb"
        save_screenshot(driver, request, "jupyterlab-run-output-notebook")
    finally:
        platform.stop_server(name)


def test_the_service_page_form_shows_a_refusal_beside_its_field_then_runs(
    platform, new_user, browser, request
):
    from selenium.webdriver.common.by import By

    name, _ = new_user(plan="trial", password=PASSWORD)
    processor = f"pagerun-{name}"
    create_processor(
        platform.settings.service_db_url,
        Path(platform.settings.processors_dir),
        processor,
        name,
        echo_notebook(),
    )
    driver = browser()
    login(driver, platform, name, PASSWORD)
    driver.get(f"{platform.url}/services/platform/processors")
    wait_until(
        driver, lambda d: d.find_elements(By.ID, f"processor-{processor}"), timeout=60, message="the list"
    )
    driver.find_element(By.CSS_SELECTOR, f"#processor-{processor} a").click()
    wait_until(driver, lambda d: d.find_elements(By.ID, "run-form"), message="the form")
    threshold = driver.find_element(By.ID, "threshold")
    assert (threshold.get_attribute("value"), threshold.get_attribute("max")) == ("15", "100")
    # The browser's own check would stop 150 before it is sent; the service must refuse it anyway.
    driver.execute_script("arguments[0].value = '150'", threshold)
    driver.find_element(By.ID, "run-submit").click()
    error = wait_until(
        driver, lambda d: d.find_elements(By.ID, "threshold-error"), message="the field's error"
    )[0]
    assert error.text == "must be at most 100"
    assert driver.find_element(By.ID, "threshold").get_attribute("aria-invalid") == "true"
    save_screenshot(driver, request, "service-run-form-refused")

    threshold = driver.find_element(By.ID, "threshold")
    threshold.clear()
    threshold.send_keys("3")
    driver.find_element(By.ID, "label").clear()
    driver.find_element(By.ID, "label").send_keys("from the page")
    driver.find_element(By.ID, "run-submit").click()
    wait_until(driver, lambda d: "/processors/runs/" in d.current_url, message="the run page")
    # Read in the page: it reloads itself every 2 s until the run ends, so element handles go stale meanwhile.
    wait_until(
        driver,
        lambda d: (
            d.execute_script("return document.getElementById('run-status')?.dataset.status") == "successful"
        ),
        timeout=240,
        message="the run page to show success (it reloads itself)",
    )
    status = driver.find_element(By.ID, "run-status")
    assert "successful" in status.text
    assert driver.find_element(By.ID, "run-progress").text.endswith("cells done")
    links = driver.find_element(By.ID, "run-results")
    assert links.find_element(By.ID, "result-notebook-lab").get_attribute("href").endswith("/output.ipynb")
    assert "from the page" in driver.find_element(By.ID, "run-inputs").text
    save_screenshot(driver, request, "service-run-page-successful")


# Writes its kernel's pid in the run folder, then sleeps ``seconds``: a run that a cancel ends.
SLEEPER = notebook(
    "seconds = 600\n", "import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\ntime.sleep(seconds)"
)


def test_an_older_version_runs_from_the_form_and_the_run_is_cancelled_from_its_view(
    platform, new_user, browser, request
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    name, token = new_user(plan="trial", password=PASSWORD)
    processor = f"versions-{name}"
    for version, default in (("1.0.0", 600), ("2.0.0", 1)):
        document = definition(
            processor,
            version,
            title="Sleeper",
            description="Sleeps for `seconds`: a run only a cancel ends.",
            notebook="sleeper.ipynb",
            inputs={"seconds": {"type": "integer", "minimum": 1, "maximum": 3600, "default": default}},
            outputs={},
        )
        published = platform.api(
            "POST", "/services/platform/api/v1/processors", token, json=publish_body(document, SLEEPER)
        )
        assert published.status_code == 201, published.text

    driver = browser()
    login(driver, platform, name, PASSWORD, next_path="/hub/spawn")
    try:
        spawn_in_browser(driver, platform, name, "interactive")
        wait_until(
            driver,
            lambda d: d.find_elements(
                By.CSS_SELECTOR, "li.lm-TabBar-tab[data-id='polartep-processors-panel']"
            ),
            message="the processors tab",
        )[0].click()
        wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, f"li[data-processor='{processor}'] button"),
            timeout=30,
            message="the processor in the panel",
        )[0].click()

        def form_of(version):
            return wait_until(
                driver,
                lambda d: next(
                    iter(
                        d.find_elements(
                            By.CSS_SELECTOR,
                            f".polartep-run-form[data-state='form'][data-version='{version}']",
                        )
                    ),
                    None,
                ),
                timeout=60,
                message=f"the run form of {version}",
            )

        form = form_of("2.0.0")
        selector = Select(form.find_element(By.CSS_SELECTOR, ".polartep-run-version-select"))
        assert [o.text for o in selector.options] == ["2.0.0 (newest)", "1.0.0"]
        assert selector.first_selected_option.get_attribute("value") == "2.0.0"
        assert form.find_element(By.ID, "polartep-run-seconds").get_attribute("value") == "1"

        selector.select_by_value("1.0.0")
        form = form_of("1.0.0")
        assert form.find_element(By.ID, "polartep-run-seconds").get_attribute("value") == "600"
        save_screenshot(driver, request, "jupyterlab-run-form-older-version")
        form.find_element(By.CSS_SELECTOR, ".polartep-run-submit").click()

        view = wait_until(
            driver,
            lambda d: next(
                iter(d.find_elements(By.CSS_SELECTOR, ".polartep-run[data-status='running']")), None
            ),
            timeout=120,
            message="the run to be running",
        )
        run_id = view.get_attribute("data-run")
        run = platform.api("GET", f"/services/platform/api/v1/runs/{run_id}", token).json()
        assert (run["processor"], run["version"], run["inputs"]) == (processor, "1.0.0", {"seconds": 600})
        pid_file = platform.home_of(name) / "processor-runs" / run_id / "kernel.pid"
        pid = int(
            wait_for(
                lambda: pid_file.exists() and pid_file.read_text().strip(),
                120,
                interval=0.3,
                what="the kernel",
            )
        )

        view.find_element(By.CSS_SELECTOR, ".polartep-run-cancel").click()
        done = wait_until(
            driver,
            lambda d: next(
                iter(d.find_elements(By.CSS_SELECTOR, ".polartep-run[data-status='dismissed']")), None
            ),
            timeout=60,
            message="the run view to show dismissed",
        )
        assert done.find_element(By.CSS_SELECTOR, ".polartep-run-state").text == (
            "Status: dismissed — cancelled; the kernel was stopped"
        )
        assert not done.find_element(By.CSS_SELECTOR, ".polartep-run-cancel").is_displayed()
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="the kernel to be gone")
        save_screenshot(driver, request, "jupyterlab-run-cancelled")
    finally:
        platform.stop_server(name)
