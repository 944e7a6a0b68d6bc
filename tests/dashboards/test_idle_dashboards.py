"""Idle dashboards stop: the idle culler stops a dashboard server nobody looks at, and a viewer starts it again.

The dashboard server's proxy reports real traffic only (jupyter-server-proxy's reporter would say "active" on a
timer forever), so an unvisited dashboard is culled like any idle server; a viewer's request in flight is activity,
so the first page after a restart is served even when the start and the page take longer than the idle timeout
(before, the culler stopped the server in the middle of that request and the viewer got the proxy's 503).
"""

from __future__ import annotations

import time

import pytest

from tests.harness import RunningPlatform, wait_for
from tests.helpers.dashboards import MARKER, notebook, open_page, publish, share

pytestmark = pytest.mark.timeout(600)

IDLE_TIMEOUT = 15


@pytest.fixture(scope="module")
def short_idle_platform(tmp_path_factory):
    with RunningPlatform(
        tmp_path_factory.mktemp("dashboards-idle"), extra_env={"POLARTEP_IDLE_TIMEOUT": str(IDLE_TIMEOUT)}
    ).running(timeout=180) as platform:
        yield platform


def test_an_unvisited_dashboard_is_culled_and_starts_again_on_request(short_idle_platform):
    platform = short_idle_platform
    owner = "idleowner"
    token = platform.create_user(owner)
    dashboard = publish(platform, token)
    server = dashboard["server"]
    platform.wait_ready(owner, server, timeout=120)
    wait_for(
        lambda: platform.server_model(owner, server) is None,
        timeout=IDLE_TIMEOUT * 8,
        interval=1,
        what="the idle culler to stop the dashboard",
    )
    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", token, json={})
    assert r.status_code in (201, 202)
    platform.wait_ready(owner, server, timeout=120)
    r = open_page(platform, owner, server, token)
    assert r.status_code == 200
    assert f"{MARKER}-42" in r.text


def test_a_viewers_first_page_after_a_cull_is_served_even_when_it_outlasts_the_idle_timeout(
    short_idle_platform,
):
    platform = short_idle_platform
    owner, viewer = "slowowner", "slowviewer"
    token = platform.create_user(owner)
    viewer_token = platform.create_user(viewer)
    # Every page load runs the notebook: this one takes longer than the idle timeout to render.
    slow = notebook(f"import time\ntime.sleep({IDLE_TIMEOUT + 10})\nprint('{MARKER}-' + str(6 * 7))")
    dashboard = publish(platform, token, title="Slow sea ice", nb=slow)
    server = dashboard["server"]
    assert share(platform, token, dashboard["id"], user=viewer).status_code == 201
    platform.wait_ready(owner, server, timeout=120)
    wait_for(
        lambda: platform.server_model(owner, server) is None,
        timeout=IDLE_TIMEOUT * 8,
        interval=1,
        what="the idle culler to stop the dashboard",
    )
    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={})
    assert r.status_code in (201, 202), r.text
    platform.wait_ready(owner, server, timeout=120)
    began = time.monotonic()
    r = open_page(platform, owner, server, viewer_token)
    took = time.monotonic() - began
    assert r.status_code == 200, (r.status_code, r.text[:300], platform.log_tail())
    assert f"{MARKER}-42" in r.text
    assert took > IDLE_TIMEOUT
    assert platform.server_model(owner, server)["ready"] is True
