"""The example notebook ``notebooks/sea-ice-climatology.ipynb`` runs on a gateway cluster from a user server's
environment (papermill with the server's variables and token), and writes its plot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from polartep_hub.settings import REPO_ROOT
from tests.helpers.servers import process_environment, server_state

pytestmark = pytest.mark.hub


def test_sea_ice_climatology_notebook_runs_on_a_gateway_cluster(platform, new_user, tmp_path):
    user, token = new_user(plan="trial")
    platform.spawn(user, token)
    env = process_environment(server_state(platform, user)["pid"])
    output = tmp_path / "out.ipynb"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            "--no-progress-bar",
            "--log-level",
            "WARNING",
            "-k",
            "python3",
            "--cwd",
            str(tmp_path),
            str(REPO_ROOT / "notebooks" / "sea-ice-climatology.ipynb"),
            str(output),
            "-p",
            "years",
            "10",
            "-p",
            "workers",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    assert (tmp_path / "sea-ice-climatology.png").stat().st_size > 10_000
    platform.stop_server(user)
