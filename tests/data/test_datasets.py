"""Datasets: owned by a project, read-write for its members, read-only for granted projects, absent for everyone else.

Specification: members of a project create datasets in a storage class of the catalogue (an empty folder under the
class's root, named by an opaque key); everyone who may read a dataset lists and gets it, with ``access`` rw or ro;
for anyone else the dataset does not exist (404, the same as a name nobody uses). Owners of the project (and
administrators) delete it and grant or revoke read access for other projects; revocation is effective at once. Names
with path tricks and unknown storage classes are refused with 400 and nothing is stored.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from polartep_hub.data.models import Dataset
from polartep_hub.data.store import dataset_bytes, sweep_orphans
from tests.helpers.service_fakes import user

DATASETS = "api/v1/datasets"


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url  # the rules do not depend on the database kind


@pytest.fixture
def projects(api, fake_hub) -> None:
    """sea-ice: alice (owner), bob (member). glaciers: eve (owner), gail. carol belongs to nothing."""
    for name in ("eve", "gail", "carol"):
        fake_hub.tokens[f"{name}-token"] = user(name)
    for name in ("alice", "bob", "eve", "gail", "carol", "ada"):
        assert api.get(f"api/v1/users/{name}/entitlements", token="hub-token").status_code == 200
    assert api.post("api/v1/projects", token="alice-token", json={"name": "sea-ice"}).status_code == 201
    assert (
        api.post("api/v1/projects/sea-ice/members", token="alice-token", json={"user": "bob"}).status_code
        == 201
    )
    assert api.post("api/v1/projects", token="eve-token", json={"name": "glaciers"}).status_code == 201
    assert (
        api.post("api/v1/projects/glaciers/members", token="eve-token", json={"user": "gail"}).status_code
        == 201
    )


def create(api, name: str = "daily", token: str = "bob-token", project: str = "sea-ice", **body):
    return api.post(
        DATASETS, token=token, json={"project": project, "name": name, "storage_class": "hdd", **body}
    )


def listed(api, token: str) -> dict[str, str]:
    response = api.get(DATASETS, token=token)
    assert response.status_code == 200, response.text
    return {f"{d['project']}/{d['name']}": d["access"] for d in response.json()["datasets"]}


def rows(app) -> int:
    with app.state.context.session() as session:
        return session.scalar(select(func.count()).select_from(Dataset)) or 0


def folder_of(app, name: str = "daily") -> Path:
    with app.state.context.session() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == name))
        return app.state.context.storage_roots.folder(dataset.storage_class, dataset.storage_key)


def test_a_member_creates_a_dataset_with_an_empty_folder_in_its_storage_class(api, app, projects, tmp_path):
    response = create(api, title="Daily sea-ice concentration", description="Synthetic\nsample")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["project"], body["name"], body["storage_class"], body["access"]) == (
        "sea-ice",
        "daily",
        "hdd",
        "rw",
    )
    assert body["title"] == "Daily sea-ice concentration" and body["description"] == "Synthetic\nsample"
    assert body["mount_path"] == "datasets/sea-ice/daily" and body["granted_to"] == []
    folder = folder_of(app)
    assert folder.parent == tmp_path / "data" / "hdd" and folder.is_dir() and not folder.is_symlink()
    assert len(folder.name) == 32  # the opaque key, not the name
    assert oct(folder.stat().st_mode & 0o7777) == "0o700"  # no system users here: the platform's own
    assert oct((tmp_path / "data" / "hdd").stat().st_mode & 0o777) == "0o711"


def test_members_read_write_granted_projects_read_only_others_see_nothing(api, projects):
    assert create(api).status_code == 201
    assert listed(api, "alice-token") == {"sea-ice/daily": "rw"}
    assert listed(api, "bob-token") == {"sea-ice/daily": "rw"}
    assert listed(api, "eve-token") == {} and listed(api, "carol-token") == {}
    assert listed(api, "ada-token") == {"sea-ice/daily": "rw"}  # administrators see everything

    granted = api.request("PUT", f"{DATASETS}/sea-ice/daily/grants/glaciers", token="alice-token")
    assert granted.status_code == 200, granted.text
    assert granted.json()["granted_to"] == ["glaciers"]
    assert listed(api, "eve-token") == {"sea-ice/daily": "ro"} and listed(api, "gail-token") == {
        "sea-ice/daily": "ro"
    }
    assert listed(api, "carol-token") == {}
    seen = api.get(f"{DATASETS}/sea-ice/daily", token="gail-token")
    assert seen.status_code == 200 and seen.json()["access"] == "ro"
    assert seen.json()["granted_to"] == []  # the owners' business


def test_a_dataset_the_caller_may_not_see_is_404_like_one_that_does_not_exist(api, projects):
    assert create(api).status_code == 201
    hidden = api.get(f"{DATASETS}/sea-ice/daily", token="carol-token")
    absent = api.get(f"{DATASETS}/sea-ice/nothing", token="carol-token")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["detail"] == "no dataset 'daily' in project 'sea-ice' that you may see"
    for method, path in (
        ("DELETE", f"{DATASETS}/sea-ice/daily"),
        ("PUT", f"{DATASETS}/sea-ice/daily/grants/glaciers"),
        ("DELETE", f"{DATASETS}/sea-ice/daily/grants/glaciers"),
    ):
        assert api.request(method, path, token="carol-token").status_code == 404


def test_revocation_refuses_reads_at_once(api, projects):
    assert create(api).status_code == 201
    assert (
        api.request("PUT", f"{DATASETS}/sea-ice/daily/grants/glaciers", token="alice-token").status_code
        == 200
    )
    assert api.get(f"{DATASETS}/sea-ice/daily", token="eve-token").status_code == 200
    revoked = api.request("DELETE", f"{DATASETS}/sea-ice/daily/grants/glaciers", token="alice-token")
    assert revoked.status_code == 200 and revoked.json()["granted_to"] == []
    assert api.get(f"{DATASETS}/sea-ice/daily", token="eve-token").status_code == 404
    again = api.request("DELETE", f"{DATASETS}/sea-ice/daily/grants/glaciers", token="alice-token")
    assert again.status_code == 404
    assert again.json()["detail"] == "project 'glaciers' holds no grant on dataset sea-ice/daily"


def test_only_owners_delete_grant_and_revoke(api, app, projects):
    assert create(api).status_code == 201
    refused = api.request("PUT", f"{DATASETS}/sea-ice/daily/grants/glaciers", token="bob-token")
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "only owners of project 'sea-ice' and administrators may grant access to its datasets"
    )
    assert (
        api.request("PUT", f"{DATASETS}/sea-ice/daily/grants/glaciers", token="alice-token").status_code
        == 200
    )
    # A granted reader sees the dataset, so it learns that it may not delete it.
    assert api.request("DELETE", f"{DATASETS}/sea-ice/daily", token="eve-token").status_code == 403
    assert api.request("DELETE", f"{DATASETS}/sea-ice/daily", token="bob-token").status_code == 403
    folder = folder_of(app)
    assert api.request("DELETE", f"{DATASETS}/sea-ice/daily", token="alice-token").status_code == 204
    assert rows(app) == 0 and not folder.exists()


def test_a_non_member_cannot_create_in_a_project_and_duplicates_conflict(api, app, projects):
    refused = create(api, token="carol-token")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "only members of project 'sea-ice' may create datasets in it"
    assert create(api).status_code == 201
    duplicate = create(api, token="alice-token")
    assert (
        duplicate.status_code == 409
        and duplicate.json()["detail"] == "project 'sea-ice' already has a dataset 'daily'"
    )
    assert create(api, project="nowhere").status_code == 404
    assert rows(app) == 1


@pytest.mark.parametrize(
    "name",
    [
        "..",
        ".",
        "../x",
        "/etc",
        "a/b",
        "a\\b",
        "%2e%2e",
        "%5c",
        "a..b",
        ".hidden",
        "Daily",
        "-x",
        "a" * 65,
        "",
        "é",
    ],
)
def test_names_with_path_tricks_are_refused_and_nothing_is_stored(api, app, projects, tmp_path, name):
    response = create(api, name=name)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].endswith(
        "use 1-64 characters of lower-case letters, digits, '_' and '-', starting with a letter or a digit"
    )
    assert rows(app) == 0
    assert not (tmp_path / "data" / "hdd").exists() or os.listdir(tmp_path / "data" / "hdd") == []


@pytest.mark.parametrize("path", ["%2e%2e", "..%2fx", "%5c", "a%5cb", "sea-ice%2fdaily"])
def test_encoded_path_tricks_in_urls_are_400_or_unrouted(api, projects, path):
    assert create(api).status_code == 201
    response = api.get(f"{DATASETS}/sea-ice/{path}", token="alice-token")
    assert response.status_code in (400, 404)  # 404 only when the decoded path no longer matches the route
    if response.status_code == 400:
        assert "invalid dataset name" in response.json()["detail"]


def test_an_unknown_storage_class_is_400_naming_the_classes(api, app, projects):
    response = api.post(
        DATASETS, token="bob-token", json={"project": "sea-ice", "name": "x", "storage_class": "tape"}
    )
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == "storage_class: 'tape' is not a storage class; use one of ssd, hdd, object"
    )
    assert rows(app) == 0


def test_a_storage_root_that_is_a_symlink_is_refused_and_nothing_is_stored(api, app, projects, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hdd").symlink_to(elsewhere)
    response = create(api)
    assert response.status_code == 503
    assert (
        response.json()["detail"]
        == "the storage class 'hdd' cannot take new datasets right now; tell an administrator"
    )
    assert rows(app) == 0 and os.listdir(elsewhere) == []


def test_deletion_never_follows_a_folder_swapped_for_a_symlink(api, app, projects, tmp_path):
    assert create(api).status_code == 201
    folder = folder_of(app)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    folder.rmdir()
    folder.symlink_to(victim)
    assert api.request("DELETE", f"{DATASETS}/sea-ice/daily", token="alice-token").status_code == 204
    assert (victim / "keep.txt").read_text() == "precious"


def test_dataset_bytes_counts_files_without_following_links(api, app, projects, tmp_path):
    assert create(api).status_code == 201
    folder = folder_of(app)
    (folder / "a.nc").write_bytes(b"x" * 1000)
    (folder / "sub").mkdir()
    (folder / "sub" / "b.nc").write_bytes(b"y" * 234)
    big = tmp_path / "big"
    big.write_bytes(b"z" * 10_000)
    (folder / "link").symlink_to(big)
    with app.state.context.session() as session:
        assert dataset_bytes(session, app.state.context.storage_roots) == {"sea-ice/daily": 1234}
    assert api.get(f"{DATASETS}/sea-ice/daily", token="bob-token").json()["bytes"] == 1234


def test_the_hub_learns_which_datasets_a_users_next_server_mounts(api, app, projects):
    assert create(api).status_code == 201
    assert (
        api.request("PUT", f"{DATASETS}/sea-ice/daily/grants/glaciers", token="alice-token").status_code
        == 200
    )
    mounts = api.get("api/v1/users/eve/dataset-mounts", token="hub-token")
    assert mounts.status_code == 200
    [mount] = mounts.json()["mounts"]
    assert (mount["project"], mount["name"], mount["mode"], mount["gid"]) == ("sea-ice", "daily", "ro", None)
    assert mount["path"] == str(folder_of(app))
    roots = [str(app.state.context.storage_roots.root(c)) for c in ("ssd", "hdd", "object")]
    assert api.get("api/v1/users/carol/dataset-mounts", token="hub-token").json() == {
        "mounts": [],
        "roots": roots,
    }
    assert api.get("api/v1/users/eve/dataset-mounts", token="eve-token").status_code == 403


def test_folders_of_datasets_deleted_with_their_project_are_swept_at_start(api, app, projects, tmp_path):
    assert create(api).status_code == 201
    assert create(api, name="keep", project="glaciers", token="eve-token").status_code == 201
    gone, kept = folder_of(app), folder_of(app, "keep")
    (gone / "data.nc").write_bytes(b"x")
    stray = tmp_path / "data" / "hdd" / "not-ours"
    stray.mkdir()
    assert api.request("DELETE", "api/v1/projects/sea-ice", token="alice-token").status_code == 204
    assert rows(app) == 1 and gone.exists()  # the database cascaded; the folder is still there
    with app.state.context.session() as session:
        removed = sweep_orphans(session, app.state.context.storage_roots)
    assert removed == [str(gone)]
    assert not gone.exists() and kept.exists() and stray.exists()
