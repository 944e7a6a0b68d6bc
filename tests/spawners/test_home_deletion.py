"""Deleting a user deletes their home: ``delete_forever`` of the local spawner (a folder under the homes root, and
nothing else, ever; with system users also the account, ``test_system_users.py``) and of the Docker spawner (the user's home volume, and no other). The real hub and engine run
these in ``tests/hub/test_erasure.py`` and ``tests/docker/test_erasure_volume.py``."""

from __future__ import annotations

import asyncio
import types

import pytest
from docker.errors import APIError, NotFound

from polartep_hub.spawners.docker import DockerProfileSpawner
from polartep_hub.spawners.local import LocalProfileSpawner


def local_spawner(root, name: str = "alice", server: str = "", isolate: bool = False) -> LocalProfileSpawner:
    """A spawner with homes in ``root/users``; without isolation (single-user), the home is ``users/<name>``."""
    user = types.SimpleNamespace(name=name, id=1, url=f"/user/{name}/")
    spawner = LocalProfileSpawner(user=user, homes_root=str(root / "users"), isolate=isolate)
    if server:
        spawner.orm_spawner = types.SimpleNamespace(
            name=server, server=None
        )  # what names a server in JupyterHub
    return spawner


def test_the_home_is_the_system_users_folder_in_the_homes_root(tmp_path):
    isolated = local_spawner(tmp_path, isolate=True)
    isolated.system_user_prefix = "jupyter-"
    assert isolated.home_dir == str(tmp_path / "users" / "jupyter-alice")
    assert local_spawner(tmp_path).home_dir == str(tmp_path / "users" / "alice")


def test_the_users_home_and_everything_in_it_is_deleted(tmp_path):
    home = tmp_path / "users" / "alice"
    (home / "notebooks").mkdir(parents=True)
    (home / "notebooks" / "results.txt").write_text("sea ice")
    neighbour = tmp_path / "users" / "bob"
    neighbour.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (home / "link-out").symlink_to(outside)

    asyncio.run(local_spawner(tmp_path).delete_forever())

    assert not home.exists()
    assert neighbour.exists() and (outside / "keep.txt").read_text() == "keep"


def test_removing_a_named_server_keeps_the_home(tmp_path):
    home = tmp_path / "users" / "alice"
    home.mkdir(parents=True)
    (home / "results.txt").write_text("sea ice")

    asyncio.run(local_spawner(tmp_path, server="second").delete_forever())

    assert (home / "results.txt").read_text() == "sea ice"


def test_a_home_that_never_existed_is_fine(tmp_path):
    (tmp_path / "users").mkdir()
    asyncio.run(local_spawner(tmp_path).delete_forever())


@pytest.mark.parametrize(
    "name",
    [
        "",  # the homes root itself
        "..",  # climbs out
        "../alice",
        "alice/..",
    ],
)
def test_nothing_outside_the_homes_root_is_ever_deleted(tmp_path, name):
    (tmp_path / "users").mkdir()
    (tmp_path / "alice").mkdir()
    spawner = local_spawner(tmp_path, name=name)
    with pytest.raises(ValueError):
        asyncio.run(spawner.delete_forever())
    assert (tmp_path / "users").exists() and (tmp_path / "alice").exists()


def test_a_home_that_is_a_symlink_is_refused(tmp_path):
    (tmp_path / "users").mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "users" / "alice").symlink_to(target)
    with pytest.raises(ValueError, match="symbolic link"):
        asyncio.run(local_spawner(tmp_path).delete_forever())
    assert target.exists()


class FakeDockerClient:
    """docker-py's ``remove_volume``: in use for ``busy`` calls, then removed; NotFound once gone."""

    def __init__(self, volumes: set[str], busy: int = 0) -> None:
        self.volumes = volumes
        self.busy = busy
        self.calls: list[str] = []

    def remove_volume(self, name: str) -> None:
        self.calls.append(name)
        if name not in self.volumes:
            raise NotFound("no such volume")
        if self.busy:
            self.busy -= 1
            response = types.SimpleNamespace(status_code=409, reason="Conflict")
            raise APIError("volume is in use", response=response)
        self.volumes.remove(name)

    def remove_network(self, name: str) -> None:
        """The user's networks go after the volume (none exists in these tests)."""
        self.calls.append(f"network:{name}")
        raise NotFound("no such network")


def docker_spawner(name: str, client: FakeDockerClient, server: str = "") -> DockerProfileSpawner:
    user = types.SimpleNamespace(name=name, id=1, url=f"/user/{name}/")
    spawner = DockerProfileSpawner(user=user)
    if server:
        spawner.orm_spawner = types.SimpleNamespace(name=server, server=None)
    spawner._fake_client = client
    return spawner


def test_the_docker_home_volume_of_that_user_only_is_removed(monkeypatch):
    monkeypatch.setattr(DockerProfileSpawner, "client", property(lambda self: self._fake_client))
    client = FakeDockerClient({"polartep-home-alice", "polartep-home-bob"}, busy=2)
    spawner = docker_spawner("alice", client)
    spawner.volume_removal_timeout = 10

    asyncio.run(spawner.delete_forever())
    asyncio.run(spawner.delete_forever())  # a second spawner of the same user: already gone, fine

    assert client.volumes == {"polartep-home-bob"}
    assert set(client.calls) == {
        "polartep-home-alice",
        "network:polartep-u-alice",
        "network:polartep-u-alice-config",  # Swarm mode's config-only network of hers
    }, "and only her networks"


def test_removing_a_named_docker_server_keeps_the_home_volume(monkeypatch):
    monkeypatch.setattr(DockerProfileSpawner, "client", property(lambda self: self._fake_client))
    client = FakeDockerClient({"polartep-home-alice"})

    asyncio.run(docker_spawner("alice", client, server="second").delete_forever())

    assert client.volumes == {"polartep-home-alice"} and client.calls == []
