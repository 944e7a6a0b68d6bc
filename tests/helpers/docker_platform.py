"""Shared by several test modules (moved from ``tests/docker/test_home_volumes.py``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from polartep_hub.gateway.backends.docker import (
    LABEL_CLUSTER,
    LABEL_ROLE,
)
from tests.docker.engine import (
    container_name,
    docker,
    inspect,
    network_prefix,
    remove_run_objects,
)
from tests.harness import RunningPlatform, wait_for
from tests.helpers.gateway import gateway_api

# Python run inside a server to try file operations: format with expression=..., e.g. "attempt(lambda: read(p))";
# prints {"error": None, "result": ...} or {"error": "<errno name>"}.
FILE_ATTEMPT = """
import errno, json
def attempt(action):
    try:
        return {{"error": None, "result": action()}}
    except OSError as e:
        return {{"error": errno.errorcode.get(e.errno)}}
def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return "written"
def read(path):
    with open(path) as f:
        return f.read()
print(json.dumps({expression}))
"""


def containers(**labels: str) -> list[dict]:
    """``docker inspect`` of every container (running or not) carrying all of ``labels``."""
    args = ["ps", "-aq"]
    for key, value in labels.items():
        args += ["--filter", f"label={key}={value}"]
    ids = docker(*args).stdout.split()
    # Inspected once each: a container listed here may be removed before it is inspected (None), and a second
    # inspect of the same id could see it gone after the first saw it.
    found = (inspect("container", i) for i in ids)
    return [c for c in found if c is not None]


def exec_in_server(user: str, code: str, timeout: float = 180) -> dict:
    """Run ``code`` with the Python of the user's server container, as the server runs (its env, its token)."""
    done = docker(
        "exec", container_name(user), "python", "-c", textwrap.dedent(code), check=False, timeout=timeout
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def swarm_task_container(user: str) -> dict:
    """``docker inspect`` of the one running task container of the user's current server service (Swarm mode).

    Filtered by the service's id, not its name: a stopped server's service is removed at once, but its task's
    container may still be shutting down (and listed as running) when the next server's service has the same name."""
    service = inspect("service", f"polartep-{user}")
    assert service is not None, f"no server service for {user}"
    ids = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.id={service['ID']}").stdout.split()
    assert len(ids) == 1, ids
    return inspect("container", ids[0])


def exec_in_swarm_server(user: str, code: str, timeout: float = 180) -> dict:
    """Run ``code`` with the Python of the user's Swarm server (its task container, as the server runs)."""
    container = swarm_task_container(user)["Id"]
    done = docker("exec", container, "python", "-c", textwrap.dedent(code), check=False, timeout=timeout)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_docker_platform(
    root: Path,
    catalogue: Path,
    idle_timeout: int = 0,
    mode: str = "docker",
    extra_env: dict[str, str] | None = None,
) -> RunningPlatform:
    """A platform in Docker (or Swarm) mode whose networks are named ``network_prefix(root.name)``; ``extra_env``
    adds settings."""
    running = RunningPlatform(
        root,
        mode=mode,
        extra_env={
            "POLARTEP_CATALOGUE": str(catalogue),
            "POLARTEP_IDLE_TIMEOUT": str(idle_timeout),
            # Networks of this platform only (several platforms of several runs share the engine).
            "POLARTEP_DOCKER_NETWORK_PREFIX": network_prefix(root.name),
            **(extra_env or {}),
        },
    )
    try:
        return running.start()
    except Exception:
        print(running.log_tail())
        running.stop()
        remove_run_objects()  # e.g. the platform network created before the hub failed to start
        raise


def start_cluster(platform, token: str, options: dict | None = None, workers: int = 0) -> str:
    """Create a cluster through the gateway's REST API with the user's token, wait until it runs, scale it."""
    r = gateway_api(platform, "POST", "clusters/", token, json={"cluster_options": options or {}})
    assert r.status_code == 201, r.text
    name = r.json()["name"]

    def running() -> bool:
        r = gateway_api(platform, "GET", f"clusters/{name}", token)
        return r.status_code == 200 and r.json()["status"] == "RUNNING"

    wait_for(running, 90, interval=0.3, what=f"cluster {name} to run")
    if workers:
        r = gateway_api(platform, "POST", f"clusters/{name}/scale", token, json={"count": workers})
        assert r.status_code == 200 and r.json()["ok"], r.text
    return name


def stop_cluster(platform, token: str, name: str):
    """Stop the cluster through the gateway's API and wait until every one of its containers is gone."""
    r = gateway_api(platform, "DELETE", f"clusters/{name}", token)
    wait_for(
        lambda: not containers(**{LABEL_CLUSTER: name}),
        STOP_WITHIN,
        interval=0.5,
        what=f"every container of cluster {name} to be removed",
    )
    return r


def wait_for_containers(name: str, role: str, timeout: float = 90) -> list[dict]:
    """The cluster's containers of ``role`` (scheduler or worker), once there is at least one."""
    wait_for(
        lambda: containers(**{LABEL_CLUSTER: name, LABEL_ROLE: role}),
        timeout,
        interval=0.5,
        what=f"a {role} container of cluster {name}",
    )
    return containers(**{LABEL_CLUSTER: name, LABEL_ROLE: role})


# Stopping removes containers at once; well below the backend's orphan sweep (60 s), so the sweep cannot mask it.
STOP_WITHIN = 20
