"""Datasets in Swarm mode: bind mounts of the service's task, read-write for members, read-only for granted projects,
absent otherwise (the same rules as Docker mode, ``tests/docker/test_dataset_mounts.py``).

Specification: a member's server service mounts the dataset's folder (a bind, not a volume) at
``/home/jovyan/datasets/<project>/<dataset>`` and its task writes there; a granted reader's service mounts it
read-only (the kernel answers EROFS to a write) and reads what the member wrote; a stranger's service has no such
mount and its task finds nothing at that path; after revocation the reader's next service has none either.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.docker.engine import docker, home_volume, unique_user_name
from tests.helpers.docker_platform import FILE_ATTEMPT, exec_in_swarm_server

# Three swarm services on the shared 2-core machine, plus the module's platform, can take longer than 180 s.
pytestmark = [pytest.mark.hub, pytest.mark.timeout(600)]

DATASETS = "/services/platform/api/v1/datasets"


def run(user: str, expression: str) -> dict:
    return exec_in_swarm_server(user, FILE_ATTEMPT.format(expression=expression))


def service_mounts(user: str) -> list[tuple[str, str, str, bool]]:
    """(type, source, target, read-only) of each mount in the user's server service's spec."""
    service = json.loads(docker("service", "inspect", f"polartep-{user}").stdout)[0]
    mounts = service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Mounts") or []
    return sorted((m["Type"], m["Source"], m["Target"], bool(m.get("ReadOnly"))) for m in mounts)


def test_swarm_members_write_granted_readers_read_only_strangers_see_nothing(swarm_platform):
    platform = swarm_platform
    owner, reader, stranger = (unique_user_name(label) for label in ("sdowner", "sdreader", "sdstranger"))
    tokens = {user: platform.create_user(user, plan="large") for user in (owner, reader, stranger)}
    own, read = f"sdown{os.getpid()}", f"sdread{os.getpid()}"
    for project, user in ((own, owner), (read, reader)):
        r = platform.api("POST", "/services/platform/api/v1/projects", tokens[user], json={"name": project})
        assert r.status_code == 201, r.text
    r = platform.api(
        "POST", DATASETS, tokens[owner], json={"project": own, "name": "ice", "storage_class": "hdd"}
    )
    assert r.status_code == 201, r.text
    assert platform.api("PUT", f"{DATASETS}/{own}/ice/grants/{read}", tokens[owner]).status_code == 200
    path = f"/home/jovyan/datasets/{own}/ice"

    for user in (owner, reader, stranger):
        platform.spawn(user, tokens[user], {"profile": "interactive"}, timeout=240)
    try:
        # The dataset's folder: <datasets_dir>/hdd/<32 hex digits of its storage key> on the host.
        [folder] = [source for kind, source, *_ in service_mounts(owner) if kind == "bind"]
        assert os.path.dirname(folder) == os.path.join(platform.settings.datasets_dir, "hdd"), folder
        assert len(os.path.basename(folder)) == 32, folder
        home = ("volume", home_volume, "/home/jovyan", False)

        def expected(user: str, *datasets: tuple[str, str, str, bool]) -> list[tuple[str, str, str, bool]]:
            return sorted([(home[0], home[1](user), home[2], home[3]), *datasets])

        assert service_mounts(owner) == expected(owner, ("bind", folder, path, False))
        assert service_mounts(reader) == expected(reader, ("bind", folder, path, True))
        assert service_mounts(stranger) == expected(stranger)
        assert run(owner, f"attempt(lambda: write({path + '/day1.txt'!r}, 'ice'))") == {
            "error": None,
            "result": "written",
        }
        assert run(reader, f"attempt(lambda: read({path + '/day1.txt'!r}))") == {
            "error": None,
            "result": "ice",
        }
        assert run(reader, f"attempt(lambda: write({path + '/new.txt'!r}, 'x'))") == {"error": "EROFS"}
        assert run(stranger, f"attempt(lambda: read({path + '/day1.txt'!r}))") == {"error": "ENOENT"}

        r = platform.api("DELETE", f"{DATASETS}/{own}/ice/grants/{read}", tokens[owner])
        assert r.status_code == 200, r.text
        platform.stop_server(reader)
        platform.spawn(reader, tokens[reader], {"profile": "interactive"}, timeout=240)
        assert service_mounts(reader) == expected(reader)
        assert run(reader, f"attempt(lambda: read({path + '/day1.txt'!r}))") == {"error": "ENOENT"}
    finally:
        for user in (owner, reader, stranger):
            platform.stop_server(user)
