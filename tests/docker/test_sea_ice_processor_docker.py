"""The worked example of docs/processors.md run as a processor in Docker mode (real engine, hub, gateway, service).

Specification: the shipped notebook, published as it is, runs in a worker container of the processor's profile
image, which has no ``polartep_hub``: it reads the member's ``polartep data sample`` dataset (mounted into the run
cluster's containers at ``~/datasets/<project>/<dataset>``) with ``polartep_lab.nsidc``, which the image carries, and
writes the same declared outputs as in local mode (``tests/helpers/sea_ice_example.check_outputs``). No user server
is started: the run's cluster gets the datasets from the service.
"""

from __future__ import annotations

import os

import pytest

from tests.docker.engine import unique_user_name
from tests.harness import wait_for
from tests.helpers import sea_ice_example

pytestmark = [pytest.mark.hub, pytest.mark.timeout(900)]

API = "/services/platform/api/v1"


def test_the_sea_ice_extent_processor_runs_in_a_container_on_the_sample_data(docker_platform):
    owner = unique_user_name("iceowner")
    token = docker_platform.create_user(owner, plan="large")
    project = f"dice{os.getpid()}"
    sea_ice_example.write_sample(docker_platform, project, owner)
    sea_ice_example.publish(docker_platform, token)

    given = sea_ice_example.inputs(project)
    r = docker_platform.api("POST", f"{API}/processors/sea-ice-extent/runs", token, json={"inputs": given})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]

    def ended():
        got = docker_platform.api("GET", f"{API}/runs/{run_id}", token).json()
        return got if got["status"] in ("successful", "failed", "dismissed") else None

    run = wait_for(ended, 600, interval=1, what="the sea-ice run to end")
    log = docker_platform.api("GET", f"{API}/runs/{run_id}/log", token).text
    assert run["status"] == "successful", f"{run}\n{log[-3000:]}"
    sea_ice_example.check_outputs(docker_platform, token, run, given)
