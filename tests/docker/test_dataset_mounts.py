"""Datasets in Docker mode: bind mounts, read-write for members, read-only for granted projects, absent otherwise.

Specification: a member's container has the dataset's folder at ``/home/jovyan/datasets/<project>/<dataset>`` and
writes there; a granted reader's container has it read-only (the kernel answers EROFS to a write); a stranger's
container has no such mount at all; after revocation the reader's next container has none either.
"""

from __future__ import annotations

import os

from tests.docker.engine import container_name, inspect
from tests.helpers.docker_platform import FILE_ATTEMPT, exec_in_server

DATASETS = "/services/platform/api/v1/datasets"


def run(user: str, expression: str) -> dict:
    return exec_in_server(user, FILE_ATTEMPT.format(expression=expression))


def dataset_mounts(user: str) -> list[tuple[str, bool]]:
    mounts = inspect("container", container_name(user))["Mounts"]
    return sorted((m["Destination"], m["RW"]) for m in mounts if m["Type"] == "bind")


def test_members_write_granted_readers_read_only_strangers_see_nothing(docker_platform, docker_user):
    owner, owner_token = docker_user("downer")
    reader, reader_token = docker_user("dreader")
    stranger, stranger_token = docker_user("dstranger")
    own, read = f"down{os.getpid()}", f"dread{os.getpid()}"
    for project, token in ((own, owner_token), (read, reader_token)):
        r = docker_platform.api("POST", "/services/platform/api/v1/projects", token, json={"name": project})
        assert r.status_code == 201, r.text
    r = docker_platform.api(
        "POST", DATASETS, owner_token, json={"project": own, "name": "ice", "storage_class": "hdd"}
    )
    assert r.status_code == 201, r.text
    assert docker_platform.api("PUT", f"{DATASETS}/{own}/ice/grants/{read}", owner_token).status_code == 200
    path = f"/home/jovyan/datasets/{own}/ice"

    for user, token in ((owner, owner_token), (reader, reader_token), (stranger, stranger_token)):
        docker_platform.spawn(user, token, {"profile": "interactive"})
    try:
        assert dataset_mounts(owner) == [(path, True)]
        assert dataset_mounts(reader) == [(path, False)]
        assert dataset_mounts(stranger) == []
        assert run(owner, f"attempt(lambda: write({path + '/day1.txt'!r}, 'ice'))") == {
            "error": None,
            "result": "written",
        }
        assert run(reader, f"attempt(lambda: read({path + '/day1.txt'!r}))") == {
            "error": None,
            "result": "ice",
        }
        assert run(reader, f"attempt(lambda: write({path + '/new.txt'!r}, 'x'))") == {"error": "EROFS"}
        assert run(
            stranger, "attempt(lambda: read('/home/jovyan/datasets/' + " + repr(own) + " + '/ice/day1.txt'))"
        ) == {"error": "ENOENT"}

        r = docker_platform.api("DELETE", f"{DATASETS}/{own}/ice/grants/{read}", owner_token)
        assert r.status_code == 200, r.text
        docker_platform.stop_server(reader)
        docker_platform.spawn(reader, reader_token, {"profile": "interactive"})
        assert dataset_mounts(reader) == []
    finally:
        for user in (owner, reader, stranger):
            docker_platform.stop_server(user)
