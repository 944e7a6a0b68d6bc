"""Per-user origins (``subdomain_host``): each user's server on a host of its own, the hub and services on theirs.

Local mode with ``subdomain_host`` on and the hub at ``localhost``: Alice's server answers only at
``http://alice.localhost:<port>/user/alice/`` (Python reaches ``*.localhost`` through
``tests/helpers/localhost_names.py``; browsers resolve it themselves).
"""

from __future__ import annotations

import pytest

from ..harness import RunningPlatform
from ..helpers import localhost_names


@pytest.fixture(scope="module")
def origins_platform(tmp_path_factory):
    with RunningPlatform(tmp_path_factory.mktemp("origins"), subdomains=True).running() as running:
        yield running


def test_a_spawned_server_answers_on_its_users_own_host(origins_platform):
    platform = origins_platform
    token = platform.create_user("olive")
    model = platform.spawn("olive", token)
    port = platform.settings.public_port
    assert model["url"] == f"http://olive.localhost:{port}/user/olive/"

    r = localhost_names.request(
        "GET", f"http://olive.localhost:{port}/user/olive/api", headers={"Authorization": f"token {token}"}
    )
    assert r.status_code == 200, r.text
    assert "version" in r.json()
    # The harness sends /user/<name>/ paths to the user's host by itself.
    assert platform.api("GET", "/user/olive/api/status", token).status_code == 200
