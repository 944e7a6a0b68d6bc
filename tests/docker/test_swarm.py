"""Swarm mode: the same profiles as Docker mode, each server a service on a (single-node) Docker Swarm."""

from __future__ import annotations

import json

import pytest

from .conftest import start_docker_platform
from .engine import docker, home_volume, remove_run_objects, unique_user_name


def swarm_state() -> str:
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()


@pytest.fixture(scope="module")
def swarm_platform(docker_engine, test_catalogue, tmp_path_factory):
    joined_here = swarm_state() == "inactive"
    if joined_here:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
    platform = start_docker_platform(tmp_path_factory.mktemp("swarm"), test_catalogue, mode="swarm")
    yield platform
    platform.stop()
    remove_run_objects()
    if joined_here:
        docker("swarm", "leave", "--force", check=False)
        # Leaving leaves the swarm's bridge network behind.
        docker("network", "rm", "docker_gwbridge", check=False)


def test_swarm_spawns_and_stops_a_server_with_its_limits(swarm_platform):
    user = unique_user_name("swarm")
    token = swarm_platform.create_user(user, plan="large")
    swarm_platform.spawn(user, token, {"profile": "interactive"})

    service = json.loads(docker("service", "inspect", f"polartep-{user}").stdout)[0]
    task = service["Spec"]["TaskTemplate"]
    assert task["ContainerSpec"]["Image"].startswith("polartep/base")
    assert task["Resources"]["Limits"] == {"NanoCPUs": 1_000_000_000, "MemoryBytes": 4 * 1024**3}
    assert [(m["Type"], m["Source"]) for m in task["ContainerSpec"]["Mounts"]] == [
        ("volume", home_volume(user))
    ]
    assert task["ContainerSpec"]["User"] == "1000:1000" and task["ContainerSpec"]["CapabilityDrop"] == ["ALL"]
    network = json.loads(docker("network", "inspect", task["Networks"][0]["Target"]).stdout)[0]
    prefix = swarm_platform.settings.docker_network_prefix
    # The user's own network: a swarm-scoped bridge configured from a config-only network that holds its /26.
    assert (network["Name"], network["Scope"], network["Driver"], network["Attachable"]) == (
        f"{prefix}-u-{user}",
        "swarm",
        "bridge",
        True,
    )
    assert network["ConfigFrom"] == {"Network": f"{prefix}-u-{user}-config"}
    config = json.loads(docker("network", "inspect", f"{prefix}-u-{user}-config").stdout)[0]
    labels = config["Labels"]
    assert (labels["org.polartep.network.prefix"], labels["org.polartep.network.user"]) == (prefix, user)
    subnet = config["IPAM"]["Config"][0]["Subnet"]
    assert config["ConfigOnly"] is True and subnet.endswith("/26") and subnet.startswith("10.213.")
    # That other users cannot reach it is shown by tests/security/test_swarm_network_isolation.py.
    assert swarm_platform.api("GET", f"/user/{user}/api/status", token).status_code == 200

    swarm_platform.stop_server(user)
    assert docker("service", "inspect", f"polartep-{user}", check=False).returncode != 0
