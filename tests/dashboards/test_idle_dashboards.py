"""Idle dashboards stop: the idle culler stops a dashboard server nobody looks at, and a viewer starts it again.

The dashboard server's proxy reports no activity of its own (jupyter-server-proxy's reporter would say "active" on a
timer forever); the hub's view of its activity comes from the proxy's routes, so an unvisited dashboard is culled
like any idle server.
"""

from __future__ import annotations

import pytest

from tests.harness import RunningPlatform, wait_for
from tests.helpers.dashboards import MARKER, open_page, publish

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
