"""The Polar TEP panel in a real browser (headless Chromium), local mode: log in through the hub, spawn from the
spawn page, and JupyterLab shows the user's plan, the server's profile and the remaining plan period.

Specification: the sidebar panel shows the user's name, the plan's display name (``Trial``, ``data-plan="trial"``),
the profile chosen on the spawn page and ``ends <day> (<n> days left)`` for the Trial's end the service reports; the
status-bar item says the same in one line. A screenshot of JupyterLab with the panel open is kept.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tests.helpers.browser import login, save_screenshot
from tests.helpers.jupyterlab import open_polartep_panel, spawn_in_browser

pytestmark = pytest.mark.hub

PASSWORD = "panel-browser-pw-1"


def expected_period(plan_ends_at: str) -> tuple[str, int]:
    ends = datetime.fromisoformat(plan_ends_at.replace("Z", "+00:00"))
    days = math.ceil((ends - datetime.now(UTC)).total_seconds() / 86400)
    return ends.date().isoformat(), days


def test_jupyterlab_shows_the_panel_with_the_users_plan(platform, new_user, browser, request):
    name, token = new_user(plan="trial", password=PASSWORD)
    driver = browser()
    login(driver, platform, name, PASSWORD, next_path="/hub/spawn")
    try:
        spawn_in_browser(driver, platform, name, "small")
        view = open_polartep_panel(driver)
        save_screenshot(driver, request, "jupyterlab-polartep-panel")
    finally:
        platform.stop_server(name)

    ends = platform.api("GET", f"/services/platform/api/v1/users/{name}/entitlements", token).json()[
        "plan_ends_at"
    ]
    day, days = expected_period(ends)
    assert (view.state, view.user, view.plan, view.plan_name, view.profile) == (
        "loaded",
        name,
        "trial",
        "Trial",
        "small",
    ), view
    assert view.period == f"ends {day} ({days} days left)"
    assert view.status_bar == f"Polar TEP: Trial · small · {days} days left"
    assert view.message == ""
