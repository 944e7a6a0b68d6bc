"""The example notebook ``notebooks/sea-ice-climatology.ipynb`` runs on a gateway cluster from a user server's
environment (papermill with the server's variables and token), and writes its plot."""

from __future__ import annotations

import pytest

from tests.helpers.servers import run_example_notebook

pytestmark = pytest.mark.hub


def test_sea_ice_climatology_notebook_runs_on_a_gateway_cluster(platform, new_user, tmp_path):
    user, token = new_user(plan="trial")
    platform.spawn(user, token)
    done = run_example_notebook(
        platform, user, "sea-ice-climatology.ipynb", tmp_path, {"years": "10", "workers": "2"}
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    assert (tmp_path / "sea-ice-climatology.png").stat().st_size > 10_000
    platform.stop_server(user)
