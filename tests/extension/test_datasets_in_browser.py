"""The JupyterLab datasets panel in a real browser (headless Chromium), local mode.

Specification: a project owner opens the Datasets panel in JupyterLab and sees the dataset their project holds with
its class, size, access, project and the path inside the server; creates a dataset through the form; grants read
access to another project and revokes it (the other project's member sees it ``ro`` in the API between the two, and
not afterwards); sees the service's refusal word for word when granting to a project that does not exist; deletes a
dataset after confirming. A screenshot of the panel is kept.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.jupyterlab import spawn_in_browser

pytestmark = pytest.mark.hub

PASSWORD = "datasets-browser-pw-1"
DATASETS = "/services/platform/api/v1/datasets"
TAB = "li.lm-TabBar-tab[data-id='polartep-datasets']"


def listed(platform, token: str) -> dict[str, str]:
    r = platform.api("GET", DATASETS, token)
    assert r.status_code == 200, r.text
    return {f"{d['project']}/{d['name']}": d["access"] for d in r.json()["datasets"]}


def test_the_panel_lists_creates_grants_revokes_and_deletes(platform, new_user, browser, request):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    owner, owner_token = new_user(plan="trial", password=PASSWORD)
    other, other_token = new_user(plan="trial")
    tag = os.getpid()
    own, theirs = f"panel{tag}", f"others{tag}"
    for project, token in ((own, owner_token), (theirs, other_token)):
        r = platform.api("POST", "/services/platform/api/v1/projects", token, json={"name": project})
        assert r.status_code == 201, r.text
    r = platform.api(
        "POST", DATASETS, owner_token, json={"project": own, "name": "daily", "storage_class": "hdd"}
    )
    assert r.status_code == 201, r.text

    driver = browser()
    login(driver, platform, owner, PASSWORD, next_path="/hub/spawn")
    try:
        spawn_in_browser(driver, platform, owner, "small")
        wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, TAB), timeout=60, message="the tab")[
            0
        ].click()
        panel = wait_until(
            driver,
            lambda d: next(
                (e for e in d.find_elements(By.ID, "polartep-datasets") if e.get_attribute("data-state")),
                None,
            ),
            timeout=60,
            message="the datasets panel",
        )
        assert panel.get_attribute("data-state") == "loaded", panel.text

        def row(dataset: str):
            found = panel.find_elements(By.CSS_SELECTOR, f".polartep-dataset[data-dataset='{dataset}']")
            return found[0] if found else None

        def cells(dataset: str) -> list[str]:
            return [
                row(dataset).find_element(By.CSS_SELECTOR, f".polartep-dataset-{part}").text
                for part in ("name", "class", "size", "access", "project", "path")
            ]

        def message() -> str:
            return panel.find_element(By.CSS_SELECTOR, ".polartep-datasets-message").text

        daily = f"{own}/daily"
        assert cells(daily) == ["daily", "hdd", "0 B", "rw", own, f"~/datasets/{own}/daily"]

        # Create through the form.
        panel.find_element(By.CSS_SELECTOR, ".polartep-datasets-name").send_keys("chips")
        Select(panel.find_element(By.CSS_SELECTOR, ".polartep-datasets-class")).select_by_value("ssd")
        Select(panel.find_element(By.CSS_SELECTOR, ".polartep-datasets-project")).select_by_value(own)
        panel.find_element(By.CSS_SELECTOR, ".polartep-datasets-create").click()
        wait_until(driver, lambda d: row(f"{own}/chips"), timeout=30, message="the new dataset's row")
        assert message() == f"created {own}/chips"
        assert cells(f"{own}/chips")[:5] == ["chips", "ssd", "0 B", "rw", own]
        assert listed(platform, owner_token) == {daily: "rw", f"{own}/chips": "rw"}

        # A refusal of the service, word for word.
        grantee = row(daily).find_element(By.CSS_SELECTOR, ".polartep-dataset-grantee")
        grantee.send_keys("no-such-project")
        row(daily).find_element(By.CSS_SELECTOR, ".polartep-dataset-grant").click()
        wait_until(driver, lambda d: "no-such-project" in message(), timeout=30, message="the refusal")
        assert message() == "no project 'no-such-project'"

        # Grant, then revoke.
        grantee = row(daily).find_element(By.CSS_SELECTOR, ".polartep-dataset-grantee")
        grantee.clear()
        grantee.send_keys(theirs)
        row(daily).find_element(By.CSS_SELECTOR, ".polartep-dataset-grant").click()
        wait_until(
            driver,
            lambda d: (
                row(daily) and row(daily).find_elements(By.CSS_SELECTOR, f"li[data-grantee='{theirs}']")
            ),
            timeout=30,
            message="the grant in the row",
        )
        assert message() == f"granted {theirs} read access to {daily}"
        assert listed(platform, other_token) == {daily: "ro"}
        save_screenshot(driver, request, "jupyterlab-datasets-panel")

        row(daily).find_element(
            By.CSS_SELECTOR, f"li[data-grantee='{theirs}'] .polartep-dataset-revoke"
        ).click()
        wait_until(
            driver,
            lambda d: row(daily) and not row(daily).find_elements(By.CSS_SELECTOR, "li[data-grantee]"),
            timeout=30,
            message="the grant to go",
        )
        assert message() == f"revoked {theirs}'s read access to {daily}"
        assert listed(platform, other_token) == {}

        # Delete, after the confirmation.
        row(f"{own}/chips").find_element(By.CSS_SELECTOR, ".polartep-dataset-delete").click()
        accept = wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"),
            timeout=30,
            message="the confirmation",
        )
        assert f"Delete dataset {own}/chips?" in driver.find_element(By.CSS_SELECTOR, ".jp-Dialog").text
        accept[0].click()
        wait_until(driver, lambda d: row(f"{own}/chips") is None, timeout=30, message="the row to go")
        assert message() == f"deleted {own}/chips"
        assert listed(platform, owner_token) == {daily: "rw"}
    finally:
        platform.stop_server(owner)
