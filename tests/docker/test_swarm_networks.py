"""Swarm mode's user networks on the real engine (``spawners/networks.py``), without a hub.

Specification: a user's network is a swarm-scoped, attachable bridge configured from the config-only network
``<prefix>-u-<user>-config`` (which holds the labels and a /26 of the pool); a /26 that another network of the engine
already holds is skipped (the engine itself would only notice at the first attach); asking again returns the same
network; a plain container can join it; ``remove_user_network`` removes both networks.
"""

from __future__ import annotations

import ipaddress

import pytest

from polartep_hub.spawners.networks import ensure_user_network, remove_user_network, user_subnets
from tests.docker.engine import docker, inspect, network_prefix, swarm_mode

POOL = "10.213.0.0/16"


@pytest.fixture
def swarm(docker_engine):
    with swarm_mode():
        yield


def test_a_swarm_user_network_takes_a_free_26_from_its_config_only_network(swarm):
    prefix, user = network_prefix("swnet"), "carol"
    name, config = f"{prefix}-u-{user}", f"{prefix}-u-{user}-config"
    first = user_subnets(POOL, user)[0]
    blocker = f"{prefix}-blocker"  # holds the subnet the user's hash picks first
    docker("network", "create", "--subnet", first, blocker)
    container = f"{prefix}-c"
    try:
        assert ensure_user_network(prefix, POOL, user, user, swarm=True) == name
        assert ensure_user_network(prefix, POOL, user, user, swarm=True) == name, "found, not made twice"

        network, config_network = inspect("network", name), inspect("network", config)
        subnet = config_network["IPAM"]["Config"][0]["Subnet"]
        assert (network["Scope"], network["Driver"], network["Attachable"], network["ConfigFrom"]) == (
            "swarm",
            "bridge",
            True,
            {"Network": config},
        )
        assert config_network["ConfigOnly"] is True
        assert config_network["Labels"] == {
            "org.polartep.network.prefix": prefix,
            "org.polartep.network.role": "user-config",
            "org.polartep.network.user": user,
        }
        assert subnet == user_subnets(POOL, user)[1], "the held /26 skipped, the next one taken"

        docker("run", "-d", "--name", container, "--network", name, "polartep/base", "sleep", "60")
        address = inspect("container", container)["NetworkSettings"]["Networks"][name]["IPAddress"]
        assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    finally:
        docker("rm", "-f", container, check=False)
        docker("network", "rm", blocker, check=False)
    assert remove_user_network(prefix, user) is True
    assert (inspect("network", config), remove_user_network(prefix, user)) == (None, False)
