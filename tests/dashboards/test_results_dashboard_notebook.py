"""The example ``notebooks/results-dashboard.ipynb`` over the sample sea-ice data, run and published (local mode).

Specification: after ``polartep data sample``,

* papermill executes the notebook with the environment of the member's running server: it prints the days and mean
  extent, saves the extent series and shows a day slider (an ipywidgets view);
* published as a dashboard (its ``folder`` parameter set to the sample's dataset), its dashboard server reads the
  dataset through the owner's dataset links, and a viewer in headless Chromium sees the page rendered with its
  widgets (the day slider and the chosen day's extent) within ``RENDER_WITHIN`` seconds of opening it; moving the
  slider shows another day's extent and redraws the map (the kernel runs the callback). Screenshots are kept.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polartep_hub.settings import REPO_ROOT
from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.dashboards import publish
from tests.helpers.servers import run_example_notebook

pytestmark = [pytest.mark.hub, pytest.mark.timeout(600)]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PASSWORD = "a-long-enough-password-for-tests-7"
DAYS = 5
RENDER_WITHIN = 90  # seconds from opening the page to the rendered widgets, on a loaded 2-core machine
CAPTION = re.compile(r"(\d{4}-\d\d-\d\d): extent (\d+\.\d\d) million km²")


@pytest.fixture(scope="module")
def sample(platform):
    """An owner (Trial plan, with a password) and the sample data in a project of theirs."""
    owner = f"resultsowner{os.getpid()}"
    token = platform.create_user(owner, plan="trial", password=PASSWORD)
    project = f"rd{os.getpid()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLARTEP_")}
    env.update(
        POLARTEP_STATE_DIR=platform.env["POLARTEP_STATE_DIR"],
        POLARTEP_PUBLIC_URL=platform.env["POLARTEP_PUBLIC_URL"],
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "polartep"), "data", "sample", "--project", project]
        + ["--owner", owner, "--days", str(DAYS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return owner, token, f"~/datasets/{project}/seaice-sample"


def test_the_results_dashboard_runs_over_the_sample(platform, sample, tmp_path):
    owner, token, folder = sample
    platform.spawn(owner, token)
    try:
        done = run_example_notebook(platform, owner, "results-dashboard.ipynb", tmp_path, {"folder": folder})
    finally:
        platform.stop_server(owner)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    assert (tmp_path / "sea-ice-extent-series.png").stat().st_size > 10_000
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    outputs = [output for cell in executed["cells"] for output in cell.get("outputs", [])]
    printed = "".join("".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    assert printed.startswith(f"{DAYS} days, mean extent "), printed
    assert any(WIDGET_VIEW in o.get("data", {}) for o in outputs), "the day slider is a widget view"


def with_folder(folder: str) -> dict:
    """The example notebook with its ``folder`` parameter set (as the author would before publishing)."""
    nb = json.loads((REPO_ROOT / "notebooks" / "results-dashboard.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    cell["source"] = f"folder = {folder!r}\n"
    return nb


def test_the_results_dashboard_renders_with_its_widgets_as_a_published_dashboard(
    platform, sample, browser, request
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    owner, token, folder = sample
    dashboard = publish(platform, token, title="Sea-ice results", nb=with_folder(folder))
    platform.wait_ready(owner, dashboard["server"], timeout=120)

    driver = browser()
    login(driver, platform, owner, PASSWORD)
    # Voila's page loads until the notebook has run: give the page the test's whole budget (the browser fixture's
    # 60 s page-load limit ran out first once, at load 2, with the rendering budget unspent).
    driver.set_page_load_timeout(RENDER_WITHIN)
    opened = time.monotonic()
    driver.get(platform.user_url(owner, dashboard["server"]))

    def caption(d) -> re.Match | None:
        return CAPTION.search(d.find_element(By.TAG_NAME, "body").text)

    first = wait_until(driver, caption, timeout=RENDER_WITHIN, message="the day's extent to be shown")
    handle = wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".noUi-handle"), timeout=30)[0]
    rendered = time.monotonic() - opened
    body = driver.find_element(By.TAG_NAME, "body").text
    assert f"{DAYS} days, mean extent " in body
    assert len(driver.find_elements(By.CSS_SELECTOR, ".jp-RenderedImage img, img")) >= 2, "series and map"
    save_screenshot(driver, request, "results-dashboard-rendered")
    print(f"results dashboard rendered in {rendered:.1f} s (load {os.getloadavg()[0]:.1f})")

    def map_image(d) -> str:
        images = d.find_elements(By.CSS_SELECTOR, "img")
        return images[-1].get_attribute("src") if images else ""

    first_map = map_image(driver)
    handle.click()
    handle.send_keys(Keys.ARROW_LEFT)  # the last day is selected first: one day back
    moved = wait_until(
        driver,
        lambda d: (match := caption(d)) and match.group(1) != first.group(1) and match,
        timeout=60,
        message="the caption to show the day before",
    )
    assert moved.group(1) < first.group(1)
    wait_until(
        driver, lambda d: map_image(d) not in ("", first_map), timeout=60, message="the map to be redrawn"
    )
    save_screenshot(driver, request, "results-dashboard-day-before")
