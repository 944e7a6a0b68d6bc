"""Swarm mode: the same profiles as Docker mode, each server a service on a (single-node) Docker Swarm."""

from __future__ import annotations

import json

from tests.docker.engine import docker, home_volume, unique_user_name


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
