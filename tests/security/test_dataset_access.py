"""Attacks on datasets from inside real user servers in local mode (system users, as root): each must fail.

The scene: project ``own`` (its owner and a member, both with servers) has a dataset with a file; project ``read``
was granted read access to it (its member has a server); a stranger with a server belongs to neither. Every attempt
runs as the server's process runs (``tests/helpers/inside_server.py``), which is what a notebook can do, and asserts
the kernel's exact answer. Revocation: the API refuses the reader at once, and the reader's next server neither
opens the folder nor shows the link.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from tests.helpers.dataset_projects import DATASETS, granted_dataset_scene
from tests.helpers.inside_server import run_inside_server

pytestmark = pytest.mark.hub

ATTEMPT = """
import errno, json, os

def attempt(action):
    try:
        result = action()
    except OSError as e:
        return {"error": type(e).__name__, "errno": errno.errorcode.get(e.errno)}
    return {"error": None, "result": result}

def read(path):
    with open(path) as f:
        return f.read()

def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return "written"
"""

REFUSED = {"error": "PermissionError", "errno": "EACCES"}


def attack(platform, user: str, expression: str) -> dict:
    return run_inside_server(platform, user, ATTEMPT + f"\nprint(json.dumps({expression}))\n")


@pytest.fixture(scope="module")
def scene(platform):
    made = granted_dataset_scene(platform, "d", "ice", "ssd")
    member, reader, stranger, own = made.member, made.reader, made.stranger, made.own
    hub_token = (platform.settings.state_path / "hub-service-token").read_text().strip()
    mounts = platform.api("GET", f"/services/platform/api/v1/users/{member}/dataset-mounts", hub_token)
    assert mounts.status_code == 200, mounts.text
    folder = mounts.json()["mounts"][0]["path"]
    for name in (member, reader, stranger):
        platform.spawn(name, made.tokens[name])
    try:
        yield {**dataclasses.asdict(made), "folder": folder, "link": f"datasets/{own}/ice"}
    finally:
        for name in (member, reader, stranger):
            platform.stop_server(name)


def test_a_member_writes_through_the_link_and_other_members_files_stay_shared(platform, scene):
    written = attack(
        platform, scene["member"], f"attempt(lambda: write({scene['link'] + '/day1.nc'!r}, 'ice'))"
    )
    assert written == {"error": None, "result": "written"}
    # Written with the server's umask 077, yet group-readable through the folder's default ACL.
    mode = os.stat(os.path.join(scene["folder"], "day1.nc")).st_mode & 0o777
    assert oct(mode) == "0o660"


def test_a_granted_reader_reads_but_cannot_write_or_delete(platform, scene):
    attack(platform, scene["member"], f"attempt(lambda: write({scene['link'] + '/shared.txt'!r}, 'shared'))")
    link = scene["link"]
    assert attack(platform, scene["reader"], f"attempt(lambda: read({link + '/shared.txt'!r}))") == {
        "error": None,
        "result": "shared",
    }
    assert attack(platform, scene["reader"], f"attempt(lambda: write({link + '/new.txt'!r}, 'x'))") == REFUSED
    assert (
        attack(platform, scene["reader"], f"attempt(lambda: write({link + '/shared.txt'!r}, 'x'))") == REFUSED
    )
    assert (
        attack(platform, scene["reader"], f"attempt(lambda: os.unlink({link + '/shared.txt'!r}))") == REFUSED
    )


def test_a_stranger_cannot_list_read_or_write_the_folder_even_knowing_its_path(platform, scene):
    folder = scene["folder"]
    stranger = scene["stranger"]
    assert attack(
        platform, stranger, "attempt(lambda: os.path.isdir('datasets/' + " + repr(scene["own"]) + "))"
    ) == {
        "error": None,
        "result": False,
    }
    assert attack(platform, stranger, f"attempt(lambda: os.listdir({folder!r}))") == REFUSED
    assert attack(platform, stranger, f"attempt(lambda: read({folder + '/shared.txt'!r}))") == REFUSED
    assert attack(platform, stranger, f"attempt(lambda: write({folder + '/planted.txt'!r}, 'x'))") == REFUSED
    # The storage root is enterable but not listable: the other datasets' keys cannot be found.
    assert attack(platform, stranger, f"attempt(lambda: os.listdir({os.path.dirname(folder)!r}))") == REFUSED


def test_a_stranger_sees_nothing_in_the_api(platform, scene):
    token = scene["tokens"][scene["stranger"]]
    assert platform.api("GET", DATASETS, token).json() == {"datasets": []}
    r = platform.api("GET", f"{DATASETS}/{scene['own']}/ice", token)
    assert r.status_code == 404


def test_revocation_refuses_the_api_at_once_and_the_folder_at_the_next_spawn(platform, scene):
    reader, token = scene["reader"], scene["tokens"][scene["reader"]]
    owner_token = scene["tokens"][scene["owner"]]
    r = platform.api("DELETE", f"{DATASETS}/{scene['own']}/ice/grants/{scene['read']}", owner_token)
    assert r.status_code == 200, r.text
    assert platform.api("GET", f"{DATASETS}/{scene['own']}/ice", token).status_code == 404
    platform.stop_server(reader)
    platform.spawn(reader, token)
    assert attack(platform, reader, f"attempt(lambda: os.listdir({scene['folder']!r}))") == REFUSED
    assert attack(platform, reader, f"attempt(lambda: os.path.lexists({scene['link']!r}))") == {
        "error": None,
        "result": False,
    }


CLUSTER_READ = """
import errno, json
from dask_gateway import Gateway

def read(path):
    try:
        with open(path) as f:
            return {"error": None, "result": f.read()}
    except OSError as e:
        return {"error": type(e).__name__, "errno": errno.errorcode.get(e.errno)}

gateway = Gateway()
cluster = gateway.new_cluster()
try:
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=120)
    print(json.dumps(client.submit(read, PATH, pure=False).result(timeout=60)))
finally:
    cluster.shutdown()
"""


def test_dask_workers_read_what_their_users_server_reads_and_nothing_more(platform, scene):
    path = os.path.join(scene["folder"], "for-workers.txt")
    written = attack(
        platform, scene["member"], f"attempt(lambda: write({scene['link'] + '/for-workers.txt'!r}, 'w'))"
    )
    assert written == {"error": None, "result": "written"}
    member = run_inside_server(platform, scene["member"], CLUSTER_READ.replace("PATH", repr(path)))
    assert member == {"error": None, "result": "w"}
    stranger = run_inside_server(platform, scene["stranger"], CLUSTER_READ.replace("PATH", repr(path)))
    assert stranger == {"error": "PermissionError", "errno": "EACCES"}
