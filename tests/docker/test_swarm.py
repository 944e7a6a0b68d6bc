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
    assert swarm_platform.api("GET", f"/user/{user}/api/status", token).status_code == 200

    swarm_platform.stop_server(user)
    assert docker("service", "inspect", f"polartep-{user}", check=False).returncode != 0
