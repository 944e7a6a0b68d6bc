"""Idle servers are stopped after POLARTEP_IDLE_TIMEOUT seconds by the hub-managed jupyterhub-idle-culler."""

from __future__ import annotations

import time

import pytest

from tests.docker.engine import container_name, inspect, unique_user_name
from tests.harness import wait_for
from tests.helpers.docker_platform import start_docker_platform

IDLE_TIMEOUT = 10


@pytest.fixture(scope="module")
def culling_platform(docker_engine, test_catalogue, tmp_path_factory):
    running = start_docker_platform(
        tmp_path_factory.mktemp("culling"), test_catalogue, idle_timeout=IDLE_TIMEOUT
    )
    yield running
    running.stop()


def test_an_idle_server_is_culled(culling_platform):
    user = unique_user_name("idle")
    token = culling_platform.create_user(user, plan="trial")
    culling_platform.spawn(user, token, {"profile": "interactive"})
    started = time.monotonic()

    wait_for(
        lambda: culling_platform.server_model(user) is None,
        90,
        interval=1,
        what="the idle server to be culled",
    )
    assert time.monotonic() - started >= IDLE_TIMEOUT * 0.5
    assert inspect("container", container_name(user)) is None
