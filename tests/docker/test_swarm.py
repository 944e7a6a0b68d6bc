"""Swarm mode: the same profiles as Docker mode, each server a service on a (single-node) Docker Swarm.

A processor run works end to end in Swarm mode: the invoker's run cluster (the Docker gateway backend's scheduler and
worker containers, on the invoker's swarm-scoped network, with the invoker's home volume) executes the notebook with
the injected values; the output notebook, file and value outputs are read back through the run API (the engine-side
reader), and another user gets 404.
"""

from __future__ import annotations

import json
from pathlib import Path

from polartep_hub.gateway.backends.docker import LABEL_ROLE, LABEL_USER
from tests.docker.engine import docker, home_volume, unique_user_name
from tests.harness import wait_for
from tests.helpers.docker_platform import containers
from tests.helpers.processors import create_processor, echo_notebook

API = "/services/platform/api/v1"


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


def test_a_processor_runs_end_to_end_in_swarm_mode(swarm_platform):
    user = unique_user_name("swarmrun")
    token = swarm_platform.create_user(user, plan="large")
    other = unique_user_name("swarmother")
    other_token = swarm_platform.create_user(other, plan="large")
    create_processor(
        swarm_platform.settings.service_db_url,
        Path(swarm_platform.settings.processors_dir),
        "swarm-echo",
        user,
        echo_notebook(),
    )
    r = swarm_platform.api(
        "POST", f"{API}/processors/swarm-echo/runs", token, json={"inputs": {"days": 3, "label": "on swarm"}}
    )
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]

    def ended():
        got = swarm_platform.api("GET", f"{API}/runs/{run_id}", token).json()
        return got if got["status"] in ("successful", "failed", "dismissed") else None

    run = wait_for(ended, 600, interval=1, what="the swarm run to end")
    log = swarm_platform.api("GET", f"{API}/runs/{run_id}/log", token).text
    assert run["status"] == "successful", f"{run}\n{log[-3000:]}"
    assert run["results"] == {"total": 45, "label": "on swarm"}
    assert run["progress"]["cells_done"] == run["progress"]["cells_total"] > 0
    labelfile = swarm_platform.api("GET", f"{API}/runs/{run_id}/outputs/labelfile", token)
    assert (labelfile.status_code, labelfile.text) == (200, "on swarm:3")
    cells = swarm_platform.api("GET", f"{API}/runs/{run_id}/notebook", token).json()["cells"]
    injected = "".join(
        next(c for c in cells if "injected-parameters" in c["metadata"].get("tags", []))["source"]
    )
    assert "days = 3\n" in injected and 'label = "on swarm"\n' in injected
    # It ran on the invoker's own cluster: a worker container of the user, with the user's home volume.
    workers = containers(**{LABEL_USER: user, LABEL_ROLE: "worker"})
    assert workers, "no worker container of the invoker"
    assert {m.get("Name") for m in workers[0]["Mounts"] if m["Type"] == "volume"} == {home_volume(user)}
    theirs = swarm_platform.api("GET", f"{API}/runs/{run_id}", other_token)
    assert (theirs.status_code, theirs.json()) == (404, {"detail": f"no run {run_id!r}"})
