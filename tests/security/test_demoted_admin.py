"""Attack: keep administrator rights in the platform service after being demoted in the hub (issue 9.10).

The service caches the hub's answer about a token for a minute. bob, an administrator, reads the service's metrics
(administrators may), is demoted through the hub's API, and at once tries again from inside his running server
with the same token. The service must not answer from its cache: the request right after the demotion is refused.
"""

from __future__ import annotations

import pytest

from tests.harness import RunningPlatform
from tests.helpers.inside_server import run_inside_server

pytestmark = pytest.mark.hub

READ = """
import json, os, httpx
r = httpx.get(os.environ["ATTACK_URL"] + "/services/platform/metrics",
              headers={"Authorization": "token " + os.environ["BOB_TOKEN"]}, timeout=60)
print(json.dumps([r.status_code, r.text[:200] if r.status_code != 200 else "metrics"]))
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with RunningPlatform(tmp_path_factory.mktemp("demoted")).running() as running:
        yield running


def test_a_demoted_admin_is_no_admin_at_the_next_request(platform):
    server_token = platform.create_user("bob", password="Bob-Moraine-7777")
    admin = platform.admin_token
    assert platform.api("PATCH", "/hub/api/users/bob", admin, json={"admin": True}).status_code == 200
    platform.spawn("bob", server_token)
    # A token of bob the administrator, made after the promotion (so the service has never seen it as a non-admin).
    r = platform.api("POST", "/hub/api/users/bob/tokens", admin, json={"note": "bob the admin"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    env = {"ATTACK_URL": platform.url, "BOB_TOKEN": token}
    assert run_inside_server(platform, "bob", READ, env=env) == [
        200,
        "metrics",
    ]  # an admin: cached by the service now
    assert platform.api("PATCH", "/hub/api/users/bob", admin, json={"admin": False}).status_code == 200
    status, detail = run_inside_server(platform, "bob", READ, env=env)
    assert status == 403 and "read:metrics" in detail
