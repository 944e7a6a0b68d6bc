"""A hub restart leaves running servers running and reachable (cleanup_servers off, proxy on its own)."""

from __future__ import annotations

import os

import pytest

from tests.harness import RunningPlatform
from tests.helpers.servers import server_state


@pytest.fixture(scope="module")
def own_platform(tmp_path_factory):
    with RunningPlatform(tmp_path_factory.mktemp("restart")).running() as running:
        yield running


def test_hub_restart_keeps_a_running_server(own_platform):
    token = own_platform.create_user("survivor", plan="trial")
    own_platform.spawn("survivor", token, {"profile": "interactive"})
    pid = server_state(own_platform, "survivor")["pid"]

    own_platform.stop_hub()
    os.kill(pid, 0)  # still alive while the hub is down
    # The proxy still routes to the server: the answer is the server's own 500 ("Failed to connect to Hub API"),
    # since it checks tokens with the hub, not the proxy's 503 for a route with no live target.
    r = own_platform.api("GET", "/user/survivor/api/status", token)
    assert r.status_code == 500 and "Hub API" in r.text, (r.status_code, r.text[:300])

    own_platform.start_hub()
    model = own_platform.server_model("survivor")
    assert model is not None and model["ready"]
    assert server_state(own_platform, "survivor")["pid"] == pid
    assert own_platform.api("GET", "/user/survivor/api/status", token).status_code == 200
