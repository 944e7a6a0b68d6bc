"""The worked example of docs/processors.md, ``notebooks/sea-ice-extent-processor.ipynb`` with its definition
``notebooks/sea-ice-extent-processor.json``, published and run as a processor on the sample data (local mode; the
same run in Docker mode is ``tests/docker/test_sea_ice_processor_docker.py``).

Specification: the shipped definition is valid for the shipped notebook (the service publishes it as it is); a run
with a date range, a region and a threshold given reads the member's dataset through ``~/datasets/...`` with the
platform's loader (``polartep_lab.nsidc``) on the member's own run cluster and writes the declared outputs: the CSV
has one row per day of the range, the PNG is a real plot, the value outputs match the CSV, and the output notebook
shows the injected values.
"""

from __future__ import annotations

import os

import pytest

from tests.harness import wait_for
from tests.helpers import sea_ice_example

pytestmark = pytest.mark.hub

API = "/services/platform/api/v1"


def test_the_sea_ice_extent_processor_publishes_and_runs_on_the_sample_data(platform, new_user):
    owner, token = new_user(plan="trial")
    project = f"ice{os.getpid()}"
    sea_ice_example.write_sample(platform, project, owner)
    sea_ice_example.publish(platform, token)

    # The server makes the ~/datasets links; the run then reads them on the owner's own run cluster.
    platform.spawn(owner, token)
    try:
        given = sea_ice_example.inputs(project)
        r = platform.api("POST", f"{API}/processors/sea-ice-extent/runs", token, json={"inputs": given})
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]

        def ended():
            got = platform.api("GET", f"{API}/runs/{run_id}", token).json()
            return got if got["status"] in ("successful", "failed", "dismissed") else None

        run = wait_for(ended, 300, interval=1, what="the sea-ice run to end")
        log = platform.api("GET", f"{API}/runs/{run_id}/log", token).text
        assert run["status"] == "successful", f"{run}\n{log[-3000:]}"
    finally:
        platform.stop_server(owner)
    sea_ice_example.check_outputs(platform, token, run, given)
