"""Attack: squat the identity provider's group names and adopt a group the platform did not create (issue 9.6).

A real platform; mallory works from inside her running server (``inside_server.run_inside``) with her own API token
(as a notebook user who made one on the hub's token page). JupyterHub already has a group ``staff`` that an
administrator made by hand (eve in it). mallory tries:

* to create a project ``oidc-admins``, a name of the identity provider's (``POLARTEP_OIDC_GROUP_PREFIX``, ``oidc-``),
  so that a later switch to OIDC would put the provider's ``admins`` into her project (or her into theirs);
* to create a project ``staff``, so that the platform would adopt the existing group (and make her its owner).

Both fail and store nothing: 422 naming the prefix, 409 for the foreign group, whose members and properties stay
as they were and which never gets the platform's mark.
"""

from __future__ import annotations

import pytest

from tests.harness import RunningPlatform
from tests.helpers.inside_server import run_inside_server

pytestmark = pytest.mark.hub

PROJECTS = "/services/platform/api/v1/projects"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with RunningPlatform(tmp_path_factory.mktemp("squatting")).running() as running:
        running.create_user("eve")
        token = running.create_user("mallory", password="Mallory-Moraine-77")
        running.spawn("mallory", token)
        r = running.api("POST", "/hub/api/groups/staff", running.admin_token, json={"users": ["eve"]})
        assert r.status_code == 201, r.text
        running.mallory_token = token
        yield running


def test_a_project_cannot_squat_the_providers_group_prefix_or_adopt_a_foreign_group(platform):
    result = run_inside_server(
        platform,
        "mallory",
        """
import json, os, httpx
url = os.environ["ATTACK_URL"] + "/services/platform/api/v1/projects"
headers = {"Authorization": "token " + os.environ["MALLORY_TOKEN"]}
out = {}
for name in ("oidc-admins", "staff"):
    r = httpx.post(url, json={"name": name}, headers=headers, timeout=60)
    out[name] = [r.status_code, r.json()["detail"]]
out["mine"] = httpx.get(url, headers=headers, timeout=60).json()["projects"]
print(json.dumps(out))
""",
        env={"ATTACK_URL": platform.url, "MALLORY_TOKEN": platform.mallory_token},
    )
    assert result["oidc-admins"] == [
        422,
        "invalid request: name: project names may not start with 'oidc-', which is reserved for the identity provider's groups "
        "(POLARTEP_OIDC_GROUP_PREFIX); choose another name",
    ]
    assert result["staff"] == [
        409,
        "JupyterHub already has a group 'staff' that is not a project; choose another name",
    ]
    assert result["mine"] == []
    admin = platform.admin_token
    # Nothing stored, nothing adopted: the foreign group is exactly as its maker left it.
    assert platform.api("GET", f"{PROJECTS}/staff", admin).status_code == 404
    assert platform.api("GET", f"{PROJECTS}/oidc-admins", admin).status_code == 404
    staff = platform.api("GET", "/hub/api/groups/staff", admin).json()
    assert staff["users"] == ["eve"] and staff["properties"] == {}
    assert platform.api("GET", "/hub/api/groups/oidc-admins", admin).status_code == 404
    # And reconciling never marks it either.
    report = platform.api("POST", f"{PROJECTS}/reconcile", admin).json()
    assert "staff" not in report["created"] and report["conflicts"] == []
    assert platform.api("GET", "/hub/api/groups/staff", admin).json()["properties"] == {}
