"""Dashboards from a processor run's results, on a real hub, gateway and platform service (local mode).

Specification: the invoker of a successful run publishes it as a dashboard (``{"run": id}``): the run's output
notebook is frozen with the run's declared file outputs beside it, at their relative paths, and the invoker owns the
dashboard; the run's API answer lists it under ``published`` and the run's page links to it (followed in headless
Chromium, screenshot kept). Anyone else gets 404 for the run; a run that did not succeed is 409.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.dashboards import MARKER, open_page
from tests.helpers.processors import ECHO_PARAMETERS, OUTPUT_CELL, create_processor, notebook

pytestmark = [pytest.mark.hub, pytest.mark.timeout(600)]

API = "/services/platform/api/v1"
PASSWORD = "a-long-enough-password-for-tests-7"
# Reads the frozen file output before the cell that writes it: in the run it is missing, in the dashboard it is the
# file the run wrote (frozen with the dashboard's version), so the page proves the file came along.
READ_CELL = (
    "import os\n"
    "print('" + MARKER + "-' + (open('label.txt').read() if os.path.exists('label.txt') else 'missing'))"
)


def _run(platform, token: str, processor: str, inputs: dict) -> dict:
    r = platform.api("POST", f"{API}/processors/{processor}/runs", token, json={"inputs": inputs})
    assert r.status_code == 201, r.text

    def done():
        answer = platform.api("GET", f"{API}/runs/{r.json()['id']}", token).json()
        return answer if answer["status"] in ("successful", "failed", "dismissed") else None

    return wait_for(done, 240, interval=0.5, what="the run to end")


def test_the_invoker_publishes_a_runs_results_and_the_run_links_to_the_dashboard(
    platform, new_user, browser, request
):
    from selenium.webdriver.common.by import By

    invoker = "dashrunner"
    token = platform.create_user(invoker, plan="trial", password=PASSWORD)
    _stranger, stranger_token = new_user()
    create_processor(
        platform.settings.service_db_url,
        Path(platform.settings.processors_dir),
        "results-dash",
        invoker,
        notebook(ECHO_PARAMETERS, READ_CELL, OUTPUT_CELL),
    )
    run = _run(platform, token, "results-dash", {"label": "from-run", "days": 3})
    assert run["status"] == "successful", run
    assert run["published"] == []

    # Only the invoker may publish it.
    r = platform.api("POST", f"{API}/dashboards", stranger_token, json={"title": "Theirs", "run": run["id"]})
    assert r.status_code == 404
    r = platform.api(
        "POST", f"{API}/dashboards", token, json={"title": "Both", "run": run["id"], "notebook": {}}
    )
    assert r.status_code == 422

    r = platform.api("POST", f"{API}/dashboards", token, json={"title": "Echo results", "run": run["id"]})
    assert r.status_code == 201, r.text
    dashboard = r.json()
    assert (dashboard["owner"], dashboard["run"]) == (invoker, run["id"])
    r = platform.api(
        "GET", f"{API}/dashboards/{dashboard['id']}/versions/{dashboard['version']}/files", token
    )
    assert r.json() == {"files": [{"path": "label.txt", "size": len("from-run:3")}]}

    platform.wait_ready(invoker, dashboard["server"], timeout=120)
    page = open_page(platform, invoker, dashboard["server"], token)
    assert page.status_code == 200, page.text[:300]
    assert f"{MARKER}-from-run:3" in page.text

    answer = platform.api("GET", f"{API}/runs/{run['id']}", token).json()
    assert answer["published"] == [
        {"kind": "dashboard", "id": dashboard["id"], "title": "Echo results", "url": dashboard["url"]}
    ]

    # The run's page links to it; the link opens the dashboard.
    driver = browser()
    login(driver, platform, invoker, PASSWORD)
    driver.get(f"{platform.url}/services/platform/processors/runs/{run['id']}")
    link = wait_until(driver, lambda d: d.find_element(By.ID, f"result-dashboard-{dashboard['id']}"))
    assert (link.text, link.get_attribute("href")) == (
        "Echo results",
        platform.url + dashboard["url"],
    )
    save_screenshot(driver, request, "run-page-links-dashboard")
    link.click()
    wait_until(
        driver,
        lambda d: f"{MARKER}-from-run:3" in d.find_element(By.TAG_NAME, "body").text,
        timeout=90,
        message="the dashboard to render",
    )
    platform.stop_server(invoker, dashboard["server"])


def test_a_run_that_did_not_succeed_is_not_published(platform):
    invoker = "dashrunfail"
    token = platform.create_user(invoker, plan="trial")
    create_processor(
        platform.settings.service_db_url,
        Path(platform.settings.processors_dir),
        "results-fail",
        invoker,
        notebook(ECHO_PARAMETERS, "raise RuntimeError('no results')"),
    )
    run = _run(platform, token, "results-fail", {})
    assert run["status"] == "failed", run
    r = platform.api("POST", f"{API}/dashboards", token, json={"title": "Nothing", "run": run["id"]})
    assert r.status_code == 409
    assert r.json()["detail"] == (f"run {run['id']} is failed: only a successful run's results are published")
    assert platform.api("GET", f"{API}/dashboards", token).json() == {"dashboards": []}
