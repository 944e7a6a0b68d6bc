"""The data notebooks run in a member's server environment against the running platform, on the sample data.

Specification: after ``polartep data sample`` (sea-ice days as netCDF files and a Zarr store, and SAR-like chips),
papermill executes each notebook with the environment and token of the member's running server (local mode):

- ``find-and-open-sea-ice.ipynb``: pystac-client finds the items in the platform's STAC API, xarray opens their files
  through ``~/datasets/...``, and the notebook writes its plot;
- ``sea-ice-climatology.ipynb``: the extent series, its daily climatology and the monthly concentration climatology,
  computed from the Zarr store on a 2-worker Dask Gateway cluster, equal a serial computation over the netCDF files
  (the loader ``nsidc.open_sea_ice`` and Dask's synchronous scheduler);
- ``sar-ice-water-classifier.ipynb``: in a server of the ML profile, PyTorch (the venv's CPU build in local mode)
  trains the small CNN on the chips and reaches at least 90 % test accuracy, which the chips' design guarantees
  room for (a fixed rule labels every chip right: ``tests/data/test_sample.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polartep_hub.data import nsidc
from tests.helpers.servers import process_environment, run_example_notebook, server_state

pytestmark = pytest.mark.hub

DAYS = 40  # two Zarr chunks (31 + 9 days), February included twice over no year: enough for the climatologies


@pytest.fixture(scope="module")
def member(platform):
    """A member (plan large: the ML profile and 2 gateway workers) of a project holding the sample data."""
    name = f"nbuser{os.getpid()}"
    token = platform.create_user(name, plan="large", accept_terms=True)
    project = f"nb{os.getpid()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLARTEP_")}
    env.update(
        POLARTEP_STATE_DIR=platform.env["POLARTEP_STATE_DIR"],
        POLARTEP_PUBLIC_URL=platform.env["POLARTEP_PUBLIC_URL"],
    )
    sample = subprocess.run(
        [str(Path(sys.executable).parent / "polartep"), "data", "sample", "--project", project, "--owner", name,
         "--days", str(DAYS), "--chips", "400"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert sample.returncode == 0, sample.stderr
    assert "Zarr store seaice_conc_daily_nh_20240101-20240209_synthetic_v04r00.zarr" in sample.stdout
    assert "wrote 400 SYNTHETIC SAR-like ice/water chips" in sample.stdout
    return name, token, project


@pytest.fixture(scope="module")
def ml_server(platform, member):
    """The member's default server, of the ML profile, for all three notebooks: started once, because papermill
    (run as root with the server's environment) leaves root-owned files under ~/.ipython that a later server of
    the user could not read."""
    name, token, _ = member
    platform.spawn(name, token, {"profile": "ml"})
    yield
    platform.stop_server(name)


def test_find_and_open_sea_ice_notebook_runs_in_a_members_server(platform, member, ml_server, tmp_path):
    name, _, project = member
    done = run_example_notebook(
        platform,
        name,
        "find-and-open-sea-ice.ipynb",
        tmp_path,
        {"collection": f"{project}:seaice-sample", "end": "2024-01-05"},
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    assert (tmp_path / "sea-ice-extent.png").stat().st_size > 10_000


def test_climatology_on_a_gateway_cluster_equals_a_serial_computation(platform, member, ml_server, tmp_path):
    import dask
    import xarray as xr

    name, _, project = member
    done = run_example_notebook(
        platform,
        name,
        "sea-ice-climatology.ipynb",
        tmp_path,
        {"dataset": f"~/datasets/{project}/seaice-sample", "workers": "2"},
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    assert (tmp_path / "sea-ice-climatology.png").stat().st_size > 10_000
    home = process_environment(server_state(platform, name)["pid"])["HOME"]
    folder = Path(home, "datasets", project, "seaice-sample").resolve()
    with dask.config.set(scheduler="synchronous"):
        concentration = nsidc.open_sea_ice(folder)["sea_ice_concentration"].reset_coords(drop=True)
        extent = nsidc.extent_km2(concentration).compute() / 1e6
        monthly = concentration.groupby("time.month").mean().compute()
    daily = extent.groupby("time.dayofyear").mean()
    with xr.open_dataset(tmp_path / "sea-ice-climatology.nc", engine="h5netcdf") as result:
        assert result.sizes == {"time": DAYS, "dayofyear": DAYS, "month": 2, "y": 448, "x": 304}
        np.testing.assert_array_equal(result["time"].values, extent["time"].values)
        np.testing.assert_allclose(result["extent"].values, extent.values, rtol=1e-12)
        np.testing.assert_allclose(result["extent_climatology"].values, daily.values, rtol=1e-12)
        np.testing.assert_allclose(
            result["concentration_climatology"].values, monthly.values, rtol=1e-5, equal_nan=True
        )
        assert 10 < float(result["extent"].mean()) < 20  # January and February: near the yearly maximum


def test_pytorch_classifier_learns_ice_from_water_in_the_ml_profile(platform, member, ml_server, tmp_path):
    name, _, project = member
    assert server_state(platform, name)["profile"] == "ml"
    done = run_example_notebook(
        platform,
        name,
        "sar-ice-water-classifier.ipynb",
        tmp_path,
        {"chips": f"~/datasets/{project}/sar-chips-sample/sar_chips_synthetic.nc", "epochs": "3"},
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    result = json.loads((tmp_path / "classifier.json").read_text())
    assert result["device"] == "cpu" and result["test_chips"] == 100 and result["epochs"] == 3
    assert result["accuracy"] >= 0.9, result
