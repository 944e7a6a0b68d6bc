"""The catalogue notebook ``notebooks/find-and-open-sea-ice.ipynb`` runs in a member's server environment.

Specification: after ``polartep data sample``, papermill executes the notebook with the environment and token of the
member's running server (local mode): pystac-client finds the items in the platform's STAC API, xarray opens their
files through ``~/datasets/...``, and the notebook writes its plot.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.servers import run_example_notebook

pytestmark = pytest.mark.hub


def test_find_and_open_sea_ice_notebook_runs_in_a_members_server(platform, new_user, tmp_path):
    owner, token = new_user(plan="trial")
    project = f"nb{os.getpid()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLARTEP_")}
    env.update(
        POLARTEP_STATE_DIR=platform.env["POLARTEP_STATE_DIR"],
        POLARTEP_PUBLIC_URL=platform.env["POLARTEP_PUBLIC_URL"],
    )
    sample = subprocess.run(
        [
            str(Path(sys.executable).parent / "polartep"),
            "data",
            "sample",
            "--project",
            project,
            "--owner",
            owner,
            "--days",
            "5",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sample.returncode == 0, sample.stderr
    platform.spawn(owner, token)
    try:
        done = run_example_notebook(
            platform,
            owner,
            "find-and-open-sea-ice.ipynb",
            tmp_path,
            {"collection": f"{project}:seaice-sample", "end": "2024-01-05"},
        )
    finally:
        platform.stop_server(owner)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    assert (tmp_path / "sea-ice-extent.png").stat().st_size > 10_000
