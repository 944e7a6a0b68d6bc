"""Attacks from inside a real user's server in Swarm mode (``docker exec`` in the service's task container).

Each user's server (a swarm service) and Dask containers share the user's own swarm-scoped bridge
(``spawners/networks.py``). From A's task container: the platform's private listeners on the host's loopback are
refused, B's server and B's scheduler time out (another bridge: dropped), while B's own server reaches both (so the
timeout is the isolation, not a closed port); the hub's API and the platform service's route through the proxy work;
and the task runs as uid 1000 with no capabilities.
"""

from __future__ import annotations

import json

import pytest

from tests.docker.conftest import (  # noqa: F401  (fixtures)
    docker_engine,
    swarm_platform,  # noqa: F401  (fixture)
    test_catalogue,
)
from tests.docker.engine import docker, unique_user_name
from tests.helpers.docker_platform import start_cluster, stop_cluster, wait_for_containers
from tests.helpers.network_probes import ALLOWED_PATHS, address_on, listening_ports, probe

# The module's set-up starts a platform, two servers and a cluster: on the shared 2-core machine that alone can take
# longer than the suite's default 180 s per test.
pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.timeout(600)]


def task_container(user: str) -> dict:
    """``docker inspect`` of the running task container of the user's server service."""
    ids = docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.service.name=polartep-{user}"
    ).stdout.split()
    assert len(ids) == 1, ids
    return json.loads(docker("inspect", ids[0]).stdout)[0]


def test_swarm_servers_and_clusters_are_isolated_and_hardened(swarm_platform):  # noqa: F811
    platform, settings = swarm_platform, swarm_platform.settings
    a, b = unique_user_name("swatk"), unique_user_name("swvic")
    tokens = {user: platform.create_user(user, plan="large") for user in (a, b)}
    for user in (a, b):
        platform.spawn(user, tokens[user], {"profile": "interactive"})
    cluster = start_cluster(platform, tokens[b])
    try:
        scheduler = wait_for_containers(cluster, "scheduler")[0]
        b_network = f"{settings.docker_network_prefix}-u-{b}"
        assert list(scheduler["NetworkSettings"]["Networks"]) == [b_network], (
            "a container, not a host process"
        )
        assert scheduler["HostConfig"]["CapDrop"] == ["ALL"] and scheduler["Config"]["User"] == "1000:1000"

        a_task, b_task = task_container(a), task_container(b)
        a_network = f"{settings.docker_network_prefix}-u-{a}"
        assert list(a_task["NetworkSettings"]["Networks"]) == [a_network]
        assert list(b_task["NetworkSettings"]["Networks"]) == [b_network], "B's server beside B's cluster"
        assert a_task["Config"]["User"] == "1000:1000" and a_task["HostConfig"]["CapDrop"] == ["ALL"]

        b_targets = [("B's server", address_on(b_task, b_network), 8888)]
        b_targets += [
            (f"B's scheduler :{p}", address_on(scheduler, b_network), p)
            for p in listening_ports(scheduler["Id"])
        ]
        targets = [
            ("platform service", "127.0.0.1", settings.service_port),
            ("proxy REST API", "127.0.0.1", settings.proxy_api_port),
            ("gateway private API", "127.0.0.1", settings.gateway_api_port),
            ("platform service on the host address", settings.container_host, settings.service_port),
            ("proxy REST API on the host address", settings.container_host, settings.proxy_api_port),
            *b_targets,
            ("hub API", settings.container_host, settings.hub_port),
            ("public proxy", settings.container_host, settings.public_port),
        ]
        outcome = probe(a_task["Id"], targets)
        assert outcome == {
            "platform service": "refused",
            "proxy REST API": "refused",
            "gateway private API": "refused",
            "platform service on the host address": "refused",
            "proxy REST API on the host address": "refused",
            **{label: "timeout" for label, _, _ in b_targets},  # another bridge: dropped
            "hub API": "connected",
            "public proxy": "connected",
        }
        from_b = probe(b_task["Id"], b_targets)
        assert from_b == {label: "connected" for label, _, _ in b_targets}, "B's own server reaches them all"

        public = f"http://{settings.container_host}:{settings.public_port}"
        other = {"url": f"{public}/user/{b}/api/status", "host": f"127.0.0.1:{settings.public_port}"}
        done = docker("exec", a_task["Id"], "python", "-c", ALLOWED_PATHS, json.dumps(other), timeout=90)
        assert json.loads(done.stdout) == {
            "service_url": f"{public}/services/platform/",
            "service me": [200, a],
            "service me without a token": 401,
            "extension panel": [200, a],
            "hub API whoami": [200, a],
            "B's server through the public route": 403,
        }
    finally:
        stop_cluster(platform, tokens[b], cluster)
        for user in (a, b):
            platform.stop_server(user)
