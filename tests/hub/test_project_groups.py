"""Projects with the real hub: every membership change shows in JupyterHub's group of the same name.

Specification: creating a project creates the group (marked as a project's) with the creator in it; adding,
removing, transferring and deleting change the group at once (``GET /hub/api/groups/<name>``); a group changed
behind the service's back is repaired by reconciliation (on demand, and at every service start, so a change
committed just before a crash still reaches the hub), and a group that is not a project's is never touched.
"""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account
from polartep_hub.projects.models import Project, ProjectMember
from polartep_hub.service.db import make_engine
from tests.harness import RunningPlatform, wait_for

PROJECTS = "/services/platform/api/v1/projects"
_names = itertools.count(1)


def project_name() -> str:
    return f"proj-{next(_names)}"


def group(platform, name: str) -> dict | None:
    response = platform.api("GET", f"/hub/api/groups/{name}", platform.admin_token)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()


def group_users(platform, name: str) -> set[str] | None:
    model = group(platform, name)
    return None if model is None else set(model["users"])


def test_membership_changes_are_reflected_in_the_hub_group(platform, new_user):
    owner, owner_token = new_user()
    member, member_token = new_user()
    heir, _ = new_user()
    name = project_name()

    created = platform.api("POST", PROJECTS, owner_token, json={"name": name, "display_name": "Sea ice"})
    assert created.status_code == 201, created.text
    assert created.json()["group_sync"] == "synced"
    model = group(platform, name)
    assert model["users"] == [owner] and model["properties"] == {"polartep_project": True}

    added = platform.api("POST", f"{PROJECTS}/{name}/members", owner_token, json={"user": member})
    assert added.status_code == 201 and added.json()["group_sync"] == "synced"
    assert group_users(platform, name) == {owner, member}

    platform.api("POST", f"{PROJECTS}/{name}/owner", owner_token, json={"user": heir})
    assert group_users(platform, name) == {owner, member, heir}

    left = platform.api("DELETE", f"{PROJECTS}/{name}/members/{member}", member_token)
    assert left.status_code == 200
    assert group_users(platform, name) == {owner, heir}

    assert platform.api("GET", f"/services/platform/api/v1/users/{owner}/projects", owner_token).json() == {
        "projects": [name]
    }

    deleted = platform.api("DELETE", f"{PROJECTS}/{name}", platform.admin_token)
    assert deleted.status_code == 204
    assert group(platform, name) is None


def test_reconciliation_repairs_a_group_changed_behind_the_services_back(platform, new_user):
    owner, owner_token = new_user()
    member, _ = new_user()
    stranger, _ = new_user()
    name = project_name()
    platform.api("POST", PROJECTS, owner_token, json={"name": name})
    platform.api("POST", f"{PROJECTS}/{name}/members", owner_token, json={"user": member})

    hub = platform.admin_token
    platform.api("DELETE", f"/hub/api/groups/{name}/users", hub, json={"users": [member]})
    platform.api("POST", f"/hub/api/groups/{name}/users", hub, json={"users": [stranger]})
    assert group_users(platform, name) == {owner, stranger}

    report = platform.api("POST", f"{PROJECTS}/reconcile", hub)
    assert report.status_code == 200, report.text
    assert report.json()["added"].get(name) == [member] and report.json()["removed"].get(name) == [stranger]
    assert group_users(platform, name) == {owner, member}

    platform.api("DELETE", f"/hub/api/groups/{name}", hub)
    platform.api("POST", f"{PROJECTS}/reconcile", hub)
    assert group_users(platform, name) == {owner, member}


def test_a_group_that_is_not_a_project_is_neither_taken_nor_touched(platform, new_user):
    outsider, token = new_user()
    name = f"idp-{next(_names)}"
    hub = platform.admin_token
    assert platform.api("POST", f"/hub/api/groups/{name}", hub, json={"users": [outsider]}).status_code == 201

    refused = platform.api("POST", PROJECTS, token, json={"name": name})
    assert refused.status_code == 409 and "not a project" in refused.json()["detail"]
    platform.api("POST", f"{PROJECTS}/reconcile", hub)
    assert group_users(platform, name) == {outsider}
    platform.api("DELETE", f"/hub/api/groups/{name}", hub)


def test_a_member_without_a_hub_user_yet_is_created_in_the_hub(platform, new_user):
    owner, owner_token = new_user()
    fresh = f"fresh{next(_names)}"
    created = platform.api(
        "POST", "/services/platform/api/v1/accounts", platform.admin_token, json={"name": fresh}
    )
    assert created.status_code == 201
    assert platform.api("GET", f"/hub/api/users/{fresh}", platform.admin_token).status_code == 404
    name = project_name()
    platform.api("POST", PROJECTS, owner_token, json={"name": name})
    added = platform.api("POST", f"{PROJECTS}/{name}/members", owner_token, json={"user": fresh})
    assert added.json()["group_sync"] == "synced"
    assert group_users(platform, name) == {owner, fresh}


@pytest.fixture(scope="module")
def own_platform(tmp_path_factory):
    with RunningPlatform(tmp_path_factory.mktemp("groups-restart")).running() as running:
        yield running


def test_a_change_committed_before_a_crash_reaches_the_hub_at_the_next_start(own_platform):
    platform = own_platform
    owner_token = platform.create_user("keeper")
    platform.create_user("latecomer")
    name = project_name()
    assert platform.api("POST", PROJECTS, owner_token, json={"name": name}).status_code == 201

    platform.stop_hub()  # the service stops with the hub, as after a crash
    # The membership was committed, but the service died before it could touch the hub's group.
    engine = make_engine(platform.settings.service_db_url)
    try:
        with Session(engine) as session:
            project = session.scalar(select(Project).where(Project.name == name))
            latecomer = session.scalar(select(Account).where(Account.name == "latecomer"))
            session.add(ProjectMember(project_id=project.id, account_id=latecomer.id, role="member"))
            session.commit()
    finally:
        engine.dispose()

    platform.start_hub()
    wait_for(
        lambda: group_users(platform, name) == {"keeper", "latecomer"},
        30,
        interval=0.5,
        what="the start-up reconciliation",
    )
