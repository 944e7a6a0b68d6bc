"""Projects: names, owners and members, who may do what, and the mirror of each project in JupyterHub's groups.

Specification: any user creates a project and becomes its owner; members and admins see it; owners and admins add
and remove members, change roles, transfer ownership and delete it; a member may leave; the last owner cannot be
removed. Bad names and fields are refused with the rule, nothing stored. Every change is committed and then
mirrored into the JupyterHub group of the same name (here a recording ``FakeHubGroups``; the real hub is
``tests/hub/test_project_groups.py``); reconciliation repairs any drift and retries what failed.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import func, select

from polartep_hub.projects.groups import PROJECT_PROPERTY, ProjectGroupSync, Reconciler
from polartep_hub.projects.models import Project, ProjectMember
from tests.helpers.fake_hub_groups import FakeHubGroups
from tests.helpers.service_fakes import user

PROJECTS = "api/v1/projects"


@pytest.fixture
def accounts(api, fake_hub) -> None:
    """alice, bob and eve have accounts (first sight); eve has a token too."""
    fake_hub.tokens["eve-token"] = user("eve")
    for name in ("alice", "bob", "eve", "ada"):
        assert api.get(f"api/v1/users/{name}/entitlements", token="hub-token").status_code == 200


@pytest.fixture
def hub_groups(app) -> FakeHubGroups:
    """Turn on group sync against a recording fake of JupyterHub's groups."""
    fake = FakeHubGroups()
    context = app.state.context
    context.project_groups = ProjectGroupSync(fake, context.sessions)
    return fake


def create(api, name: str = "sea-ice", token: str = "alice-token", **body):
    return api.post(PROJECTS, token=token, json={"name": name, **body})


def add(api, user_name: str, project: str = "sea-ice", token: str = "alice-token", role: str = "member"):
    return api.post(f"{PROJECTS}/{project}/members", token=token, json={"user": user_name, "role": role})


def remove(api, user_name: str, project: str = "sea-ice", token: str = "alice-token"):
    return api.request("DELETE", f"{PROJECTS}/{project}/members/{user_name}", token=token)


def members(api, project: str = "sea-ice") -> dict[str, str]:
    body = api.get(f"{PROJECTS}/{project}", token="ada-token").json()
    return {m["name"]: m["role"] for m in body["members"]}


def project_rows(app) -> int:
    with app.state.context.session() as session:
        return session.scalar(select(func.count()).select_from(Project)) or 0


# --- creating and reading -------------------------------------------------------------------------------------------


def test_a_user_creates_a_project_and_owns_it(api, accounts):
    response = create(api, display_name="Sea ice", description="Arctic sea-ice\nconcentration")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "sea-ice" and body["display_name"] == "Sea ice"
    assert body["description"] == "Arctic sea-ice\nconcentration"
    assert body["owners"] == ["alice"] and body["your_role"] == "owner"
    assert [m["name"] for m in body["members"]] == ["alice"]
    assert body["group_sync"] == "off"  # no hub in these tests unless hub_groups is used


def test_the_display_name_defaults_to_the_name(api, accounts):
    assert create(api).json()["display_name"] == "sea-ice"


def test_a_first_time_user_gets_an_account_when_creating_a_project(api, fake_hub):
    fake_hub.tokens["newbie-token"] = user("newbie")
    assert create(api, token="newbie-token").json()["owners"] == ["newbie"]


@pytest.mark.parametrize(
    "name",
    ["Sea-Ice", "sea ice", "..", ".hidden", "-dash", "_under", "", "a" * 65, "<script>", "ünï", "a/b", "x\n"],
)
def test_names_outside_the_rule_are_refused_with_the_rule(api, app, accounts, name):
    response = create(api, name)
    assert response.status_code == 400, response.text
    assert "starting with a letter or a digit" in response.json()["detail"]
    assert project_rows(app) == 0


@pytest.mark.parametrize("name", ["a", "0", "sea-ice.v2_final", "x" * 64])
def test_names_inside_the_rule_are_taken_as_given(api, accounts, name):
    assert create(api, name).json()["name"] == name


@pytest.mark.parametrize(
    "display_name, message",
    [
        ("x" * 201, "display_name: at most 200 characters"),
        ("   ", "display_name: must not be empty"),
        ("bell\x07", "display_name: must not contain control"),
    ],
)
def test_bad_display_names_are_refused(api, app, accounts, display_name, message):
    response = create(api, display_name=display_name)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert project_rows(app) == 0


def test_an_over_long_description_is_refused(api, app, accounts):
    response = create(api, description="y" * 2001)
    assert response.status_code == 400
    assert "description: at most 2000 characters" in response.json()["detail"]
    assert project_rows(app) == 0


def test_markup_in_display_names_is_kept_as_text(api, accounts):
    body = create(api, display_name="<b>Ice</b>").json()
    assert body["display_name"] == "<b>Ice</b>"  # JSON is not HTML; pages escape it


def test_a_taken_name_is_409(api, accounts):
    create(api)
    response = create(api, token="bob-token")
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


def test_only_admins_may_name_another_owner(api, accounts):
    assert create(api, owner="bob").status_code == 403
    body = create(api, token="ada-token", owner="bob").json()
    assert body["owners"] == ["bob"] and body["your_role"] is None


def test_an_unknown_owner_is_404(api, accounts, app):
    response = create(api, token="ada-token", owner="ghost")
    assert response.status_code == 404
    assert project_rows(app) == 0


def test_users_list_their_projects_and_admins_all(api, accounts):
    create(api, "a-proj")
    create(api, "b-proj", token="bob-token")
    add(api, "bob", project="a-proj")
    mine = api.get(PROJECTS, token="alice-token").json()["projects"]
    assert [(p["name"], p["your_role"]) for p in mine] == [("a-proj", "owner")]
    bobs = api.get(PROJECTS, token="bob-token").json()["projects"]
    assert [(p["name"], p["your_role"]) for p in bobs] == [("a-proj", "member"), ("b-proj", "owner")]
    everything = api.get(PROJECTS, token="ada-token").json()["projects"]
    assert [p["name"] for p in everything] == ["a-proj", "b-proj"]
    assert everything[0]["members"] == 2


def test_members_and_admins_see_a_project_others_do_not(api, accounts):
    create(api)
    add(api, "bob")
    assert api.get(f"{PROJECTS}/sea-ice", token="bob-token").status_code == 200
    assert api.get(f"{PROJECTS}/sea-ice", token="ada-token").status_code == 200
    response = api.get(f"{PROJECTS}/sea-ice", token="eve-token")
    assert response.status_code == 403
    assert "only members" in response.json()["detail"]


def test_an_unknown_project_is_404(api, accounts):
    response = api.get(f"{PROJECTS}/nothing", token="ada-token")
    assert response.status_code == 404
    assert "no project 'nothing'" in response.json()["detail"]


def test_services_other_than_the_hub_have_no_projects(api, fake_hub):
    from tests.helpers.service_fakes import service

    fake_hub.tokens["svc-token"] = service("other", {"access:services!service=platform"})
    assert api.get(PROJECTS, token="svc-token").status_code == 403


# --- members ----------------------------------------------------------------------------------------------------


def test_owners_add_members(api, accounts):
    create(api)
    response = add(api, "bob")
    assert response.status_code == 201
    assert members(api) == {"alice": "owner", "bob": "member"}


def test_members_may_not_add_members(api, accounts):
    create(api)
    add(api, "bob")
    response = add(api, "eve", token="bob-token")
    assert response.status_code == 403
    assert "only owners" in response.json()["detail"]
    assert members(api) == {"alice": "owner", "bob": "member"}


def test_admins_add_members_to_any_project(api, accounts):
    create(api)
    assert add(api, "eve", token="ada-token").status_code == 201


def test_adding_an_unknown_account_is_404_and_twice_is_409(api, accounts):
    create(api)
    assert add(api, "ghost").status_code == 404
    add(api, "bob")
    response = add(api, "bob")
    assert response.status_code == 409
    assert members(api) == {"alice": "owner", "bob": "member"}


def test_a_bad_role_is_refused(api, accounts):
    create(api)
    assert add(api, "bob", role="king").status_code == 422
    assert members(api) == {"alice": "owner"}


def test_owners_remove_members(api, accounts):
    create(api)
    add(api, "bob")
    assert remove(api, "bob").status_code == 200
    assert members(api) == {"alice": "owner"}


def test_a_member_may_leave_but_not_remove_others(api, accounts):
    create(api)
    add(api, "bob")
    add(api, "eve")
    assert remove(api, "eve", token="bob-token").status_code == 403
    assert remove(api, "bob", token="bob-token").status_code == 200
    assert members(api) == {"alice": "owner", "eve": "member"}


def test_the_last_owner_cannot_be_removed(api, accounts):
    create(api)
    for token in ("alice-token", "ada-token"):
        response = remove(api, "alice", token=token)
        assert response.status_code == 409
        assert "transfer ownership first" in response.json()["detail"]
    assert members(api) == {"alice": "owner"}


def test_one_of_two_owners_may_be_removed(api, accounts):
    create(api)
    add(api, "bob", role="owner")
    assert remove(api, "alice", token="bob-token").status_code == 200
    assert members(api) == {"bob": "owner"}


def test_removing_a_non_member_is_404(api, accounts):
    create(api)
    assert remove(api, "eve").status_code == 404


def test_ownership_transfer_makes_one_owner_and_keeps_the_old_as_member(api, accounts):
    create(api)
    response = api.post(f"{PROJECTS}/sea-ice/owner", token="alice-token", json={"user": "bob"})
    assert response.status_code == 200
    assert response.json()["owners"] == ["bob"]
    assert members(api) == {"alice": "member", "bob": "owner"}
    assert add(api, "eve").status_code == 403  # alice is no longer an owner
    assert remove(api, "alice", token="bob-token").status_code == 200


def test_members_may_not_transfer_ownership(api, accounts):
    create(api)
    add(api, "bob")
    response = api.post(f"{PROJECTS}/sea-ice/owner", token="bob-token", json={"user": "bob"})
    assert response.status_code == 403
    assert members(api) == {"alice": "owner", "bob": "member"}


def test_roles_change_but_never_leave_no_owner(api, accounts):
    create(api)
    add(api, "bob")
    path = f"{PROJECTS}/sea-ice/members"
    assert api.patch(f"{path}/alice", token="alice-token", json={"role": "member"}).status_code == 409
    assert api.patch(f"{path}/bob", token="alice-token", json={"role": "owner"}).status_code == 200
    assert api.patch(f"{path}/alice", token="alice-token", json={"role": "member"}).status_code == 200
    assert members(api) == {"alice": "member", "bob": "owner"}


def test_owners_and_admins_delete_projects_members_do_not(api, app, accounts):
    create(api)
    create(api, "other")
    add(api, "bob")
    assert api.request("DELETE", f"{PROJECTS}/sea-ice", token="bob-token").status_code == 403
    assert api.request("DELETE", f"{PROJECTS}/sea-ice", token="alice-token").status_code == 204
    assert api.request("DELETE", f"{PROJECTS}/other", token="ada-token").status_code == 204
    assert project_rows(app) == 0
    with app.state.context.session() as session:
        assert session.scalar(select(func.count()).select_from(ProjectMember)) == 0


# --- a user's projects (for the OIDC login) ---------------------------------------------------------------------


def test_a_users_projects_for_the_hub_admins_and_the_user(api, accounts):
    create(api, "b-proj")
    create(api, "a-proj", token="bob-token")
    add(api, "bob", project="b-proj")
    for token in ("hub-token", "ada-token", "bob-token"):
        response = api.get("api/v1/users/bob/projects", token=token)
        assert response.json() == {"projects": ["a-proj", "b-proj"]}
    assert api.get("api/v1/users/bob/projects", token="alice-token").status_code == 403


def test_a_user_never_seen_has_no_projects(api):
    assert api.get("api/v1/users/stranger/projects", token="hub-token").json() == {"projects": []}


# --- JupyterHub group sync --------------------------------------------------------------------------------------


def test_every_change_is_mirrored_into_the_hub_group(api, accounts, hub_groups):
    body = create(api).json()
    assert body["group_sync"] == "synced"
    assert hub_groups.members("sea-ice") == {"alice"}
    assert hub_groups.groups_by_name["sea-ice"]["properties"] == {PROJECT_PROPERTY: True}
    assert add(api, "bob").json()["group_sync"] == "synced"
    assert hub_groups.members("sea-ice") == {"alice", "bob"}
    api.post(f"{PROJECTS}/sea-ice/owner", token="alice-token", json={"user": "eve"})
    assert hub_groups.members("sea-ice") == {"alice", "bob", "eve"}
    remove(api, "alice", token="eve-token")
    assert hub_groups.members("sea-ice") == {"bob", "eve"}
    response = api.request("DELETE", f"{PROJECTS}/sea-ice", token="eve-token")
    assert response.headers["x-polartep-group-sync"] == "synced"
    assert hub_groups.members("sea-ice") is None


def test_members_unknown_to_the_hub_are_created_there_first(api, accounts, hub_groups):
    create(api)
    # The fake, like JupyterHub, refuses to group users it does not know: success means they were created first.
    assert add(api, "bob").json()["group_sync"] == "synced"
    assert {"alice", "bob"} <= hub_groups.users
    assert hub_groups.members("sea-ice") == {"alice", "bob"}


def test_a_hub_group_that_is_not_a_project_cannot_be_taken_over(api, app, accounts, hub_groups):
    hub_groups.add_foreign_group("staff", {"eve"})
    response = create(api, "staff")
    assert response.status_code == 409
    assert "not a project" in response.json()["detail"]
    assert project_rows(app) == 0
    assert hub_groups.members("staff") == {"eve"}


def test_a_hub_that_is_down_leaves_the_change_committed_and_pending(api, accounts, hub_groups):
    create(api)
    hub_groups.down = True
    response = add(api, "bob")
    assert response.status_code == 201 and response.json()["group_sync"] == "pending"
    assert members(api) == {"alice": "owner", "bob": "member"}
    hub_groups.down = False
    assert hub_groups.members("sea-ice") == {"alice"}
    report = api.post(f"{PROJECTS}/reconcile", token="ada-token").json()
    assert report["added"] == {"sea-ice": ["bob"]}
    assert hub_groups.members("sea-ice") == {"alice", "bob"}


def test_reconciliation_repairs_drift_and_removes_orphaned_project_groups(api, accounts, hub_groups):
    create(api)
    add(api, "bob")
    create(api, "gone")
    hub_groups.groups_by_name["sea-ice"]["users"] = {"alice", "eve"}  # changed behind the service's back
    hub_groups.groups_by_name["gone"]["users"].clear()
    hub_groups.add_foreign_group("staff", {"eve"})
    # A project deleted while the hub was down leaves its group behind.
    hub_groups.down = True
    api.request("DELETE", f"{PROJECTS}/gone", token="alice-token")
    hub_groups.down = False

    report = api.post(f"{PROJECTS}/reconcile", token="hub-token").json()
    assert report["added"] == {"sea-ice": ["bob"]} and report["removed"] == {"sea-ice": ["eve"]}
    assert report["deleted"] == ["gone"]
    assert hub_groups.members("sea-ice") == {"alice", "bob"}
    assert hub_groups.members("gone") is None
    assert hub_groups.members("staff") == {"eve"}  # not a project's: left alone

    again = api.post(f"{PROJECTS}/reconcile", token="hub-token").json()
    assert again["added"] == again["removed"] == {} and again["deleted"] == again["created"] == []


def test_reconciliation_recreates_a_deleted_group(api, accounts, hub_groups):
    create(api)
    del hub_groups.groups_by_name["sea-ice"]
    report = api.post(f"{PROJECTS}/reconcile", token="ada-token").json()
    assert report["created"] == ["sea-ice"]
    assert hub_groups.members("sea-ice") == {"alice"}


def test_only_admins_and_the_hub_reconcile(api, accounts, hub_groups):
    assert api.post(f"{PROJECTS}/reconcile", token="alice-token").status_code == 403


def test_without_a_hub_reconcile_is_503(api, accounts):
    assert api.post(f"{PROJECTS}/reconcile", token="ada-token").status_code == 503


def test_the_reconciler_retries_with_backoff_until_the_hub_answers(app, api, accounts, hub_groups):
    create(api)
    add(api, "bob")
    hub_groups.groups_by_name.clear()
    hub_groups.down = True
    reconciler = Reconciler(app.state.context.project_groups, interval=3600, first_retry=0.05, max_retry=0.2)
    reconciler.start()
    try:
        time.sleep(0.3)
        assert reconciler.last_error is not None and "did not answer" in reconciler.last_error
        hub_groups.down = False
        deadline = time.monotonic() + 5
        while hub_groups.members("sea-ice") != {"alice", "bob"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub_groups.members("sea-ice") == {"alice", "bob"}
        assert reconciler.last_error is None
    finally:
        reconciler.stop()


def test_a_failed_sync_wakes_the_reconciler(app, api, accounts, hub_groups):
    create(api)
    context = app.state.context
    context.reconciler = Reconciler(context.project_groups, interval=3600, first_retry=0.05).start()
    try:
        time.sleep(0.1)  # the start-up pass is done; the next one only comes when woken
        hub_groups.down = True
        assert add(api, "bob").json()["group_sync"] == "pending"
        hub_groups.down = False
        deadline = time.monotonic() + 5
        while hub_groups.members("sea-ice") != {"alice", "bob"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub_groups.members("sea-ice") == {"alice", "bob"}
    finally:
        context.reconciler.stop()


# --- the identity provider's group names (issue 9.6) -----------------------------------------------------------


@pytest.mark.parametrize("name", ["oidc-staff", "oidc-", "oidc-sea-ice"])
def test_names_with_the_providers_group_prefix_are_reserved(api, app, accounts, name):
    response = create(api, name)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "invalid request: name: project names may not start with 'oidc-', which is reserved for the identity provider's groups "
        "(POLARTEP_OIDC_GROUP_PREFIX); choose another name"
    )
    assert project_rows(app) == 0


def test_the_reserved_prefix_follows_the_setting(api, app, accounts):
    context = app.state.context
    context.config = dataclasses.replace(context.config, oidc_group_prefix="idp:")
    assert create(api, "oidc-staff").status_code == 201
    assert create(api, "idp-staff").status_code == 201
    assert create(api, "idp:staff").status_code in (400, 422)  # ':' is not allowed in names at all
    context.config = dataclasses.replace(context.config, oidc_group_prefix="team")
    response = create(api, "team-x")
    assert response.status_code == 422 and "'team'" in response.json()["detail"]


def test_a_foreign_group_appearing_during_creation_is_not_adopted_and_nothing_is_stored(
    api, app, accounts, hub_groups
):
    # The group appears after the service's check and before its POST (the race the check alone cannot close).
    sync = app.state.context.project_groups
    checked = sync.foreign_group_exists

    def check_then_someone_creates_it(name):
        answer = checked(name)
        hub_groups.add_foreign_group(name, {"eve"})
        return answer

    sync.foreign_group_exists = check_then_someone_creates_it
    response = create(api, "staff")
    assert response.status_code == 409
    assert "not a project" in response.json()["detail"]
    assert project_rows(app) == 0
    assert hub_groups.members("staff") == {"eve"}
    assert hub_groups.groups_by_name["staff"]["properties"] == {}


def test_reconciliation_never_marks_or_changes_an_unmarked_group_of_a_projects_name(
    api, app, accounts, hub_groups
):
    create(api)
    # Someone replaced the project's group with one of their own (unmarked), with a member of their choosing.
    hub_groups.groups_by_name["sea-ice"] = {"users": {"eve"}, "properties": {}}
    hub_groups.users.add("eve")
    report = api.post(f"{PROJECTS}/reconcile", token="ada-token").json()
    assert report["conflicts"] == ["sea-ice"] and report["added"] == {} and report["removed"] == {}
    assert hub_groups.groups_by_name["sea-ice"] == {"users": {"eve"}, "properties": {}}
