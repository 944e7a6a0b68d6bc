"""What ``DockerProfileSpawner`` asks of Docker, checked without an engine (pure object building, as kubespawner)."""

from __future__ import annotations

import asyncio
import types

import pytest

from polartep_hub.spawners import docker as docker_module
from polartep_hub.spawners import profiles
from polartep_hub.spawners.docker import DockerProfileSpawner


def spawner(name: str = "alice") -> DockerProfileSpawner:
    user = types.SimpleNamespace(name=name, id=1, url=f"/user/{name}/")
    return DockerProfileSpawner(user=user, network_name="host")


@pytest.fixture(autouse=True)
def no_reserved_ports(monkeypatch):
    monkeypatch.setattr(DockerProfileSpawner, "_ports_in_use", {})
    monkeypatch.setattr(DockerProfileSpawner, "_port_lock", None)


def test_only_catalogue_images_are_allowed():
    assert spawner().allowed_images == ["polartep/base", "polartep/ml"]


def test_the_profile_sets_image_limits_and_no_extra_swap():
    s = spawner()
    s.apply_profile(s.catalogue.profile("small"))
    assert (s.image, s.cpu_limit, s.mem_limit) == ("polartep/base", 2, 8 * 1024**3)
    assert s.extra_host_config == {"memswap_limit": 8 * 1024**3}


def test_a_gpu_is_requested_for_ml_only_where_the_host_has_one(monkeypatch):
    s = spawner()
    ml = s.catalogue.profile("ml")
    monkeypatch.setattr(profiles, "host_has_gpu", lambda: False)
    s.apply_profile(ml)
    assert s.image == "polartep/ml" and "device_requests" not in s.extra_host_config
    monkeypatch.setattr(profiles, "host_has_gpu", lambda: True)
    s.apply_profile(ml)
    assert s.extra_host_config["device_requests"] == [
        {"Driver": "nvidia", "Count": 1, "Capabilities": [["gpu"]]}
    ]
    s.apply_profile(s.catalogue.profile("small"))
    assert "device_requests" not in s.extra_host_config, "switching profile drops the GPU request"


def test_each_user_gets_their_own_home_volume():
    assert spawner().volumes == {"polartep-home-{username}": "/home/jovyan"}
    assert spawner("bob").volume_binds == {"polartep-home-bob": {"bind": "/home/jovyan", "mode": "rw"}}


def test_concurrent_spawns_never_get_the_same_port(monkeypatch):
    # Even if the OS offered the same free port to every caller, the lock and the reservation keep them apart.
    offered = iter([40001] * 3 + [40002] * 3 + [40003])
    real_socket = docker_module.socket.socket

    class OfferingSocket(real_socket):
        def getsockname(self):
            return ("127.0.0.1", next(offered))

    monkeypatch.setattr(docker_module.socket, "socket", OfferingSocket)

    async def reserve_three():
        spawners = [spawner(f"u{i}") for i in range(3)]
        return await asyncio.gather(*(s._reserve_port() for s in spawners))

    assert sorted(asyncio.run(reserve_three())) == [40001, 40002, 40003]


def test_a_recorded_port_stays_reserved_across_a_hub_restart():
    s = spawner()
    s.load_state({"port": 45678, "object_id": "abc", "object_name": "polartep-alice"})
    assert DockerProfileSpawner._ports_in_use[45678] == s._log_name
    assert s.get_state()["port"] == 45678
    assert "--port=45678" in s.get_args() and "--ip=127.0.0.1" in s.get_args()


@pytest.mark.parametrize("name", ["bob", "Ana.Lima", "x_y-z", "zoë"])
def test_the_spawner_the_gateway_and_erasure_name_the_same_home_volume(name):
    from polartep_hub.gateway.backends.docker import PlatformDockerBackend
    from polartep_hub.spawners.home_volume import home_volume_name

    expected = home_volume_name(name)
    assert expected.startswith("polartep-home-")
    assert spawner(name).home_volume_name == expected
    assert PlatformDockerBackend().home_volume(name) == expected
