"""What ``DockerProfileSpawner`` asks of Docker, checked without an engine (pure object building, as kubespawner)."""

from __future__ import annotations

import types

import pytest

from polartep_hub.spawners import profiles
from polartep_hub.spawners.docker import DockerProfileSpawner


def spawner(name: str = "alice") -> DockerProfileSpawner:
    user = types.SimpleNamespace(name=name, id=1, url=f"/user/{name}/")
    return DockerProfileSpawner(user=user)


def test_only_catalogue_images_are_allowed():
    assert spawner().allowed_images == ["polartep/base", "polartep/ml"]


def test_the_profile_sets_image_limits_and_no_extra_swap():
    s = spawner()
    s.apply_profile(s.catalogue.profile("small"))
    assert (s.image, s.cpu_limit, s.mem_limit) == ("polartep/base", 2, 8 * 1024**3)
    assert s.extra_host_config["memswap_limit"] == 8 * 1024**3


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


def test_each_user_runs_on_their_own_network_never_the_hosts():
    assert spawner().network_name == "polartep-u-alice"
    assert spawner("bob").network_name == "polartep-u-bob"
    assert spawner().use_internal_ip is True, (
        "the hub reaches the server at its address on the user's network"
    )


def test_servers_are_hardened_like_the_dask_containers():
    s = spawner()
    s.apply_profile(s.catalogue.profile("small"))
    assert s.extra_create_kwargs == {"user": "1000:1000"}
    assert s.extra_host_config == {
        "auto_remove": False,  # removed by the spawner, which reads a failed start's output first
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": 4096,
        "read_only": True,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=1g"},
        "memswap_limit": 8 * 1024**3,
    }


@pytest.mark.parametrize("name", ["bob", "Ana.Lima", "x_y-z", "zoë"])
def test_the_spawner_the_gateway_and_erasure_name_the_same_home_volume(name):
    from polartep_hub.gateway.backends.docker import PlatformDockerBackend
    from polartep_hub.spawners.home_volume import home_volume_name

    expected = home_volume_name(name)
    assert expected.startswith("polartep-home-")
    assert spawner(name).home_volume_name == expected
    assert PlatformDockerBackend().home_volume(name) == expected


def test_docker_calls_of_different_spawns_run_side_by_side():
    # DockerSpawner's own executor has one thread for the whole hub: a second user's create/start waited behind
    # the first's. Two calls that each wait for the other only finish if both run at once.
    import threading

    a, b = spawner("alice"), spawner("bob")
    assert a.executor is b.executor
    both = threading.Barrier(2, timeout=10)
    futures = [s.executor.submit(both.wait) for s in (a, b)]
    assert sorted(f.result(timeout=20) for f in futures) == [0, 1]


def test_networks_of_different_users_are_not_created_under_one_lock():
    from polartep_hub.spawners import networks

    assert networks._lock_for("polartep-u-alice") is networks._lock_for("polartep-u-alice")
    assert networks._lock_for("polartep-u-alice") is not networks._lock_for("polartep-u-bob")
