"""The climatology notebook in Docker mode: run in a member's container on a 2-worker cluster of worker containers.

Specification: after ``polartep data sample`` (as in ``tests/data/test_notebooks.py``), papermill runs
``notebooks/sea-ice-climatology.ipynb`` inside the member's server container (its Python, environment and token),
with ``workers=2``. The notebook's Dask Gateway cluster runs as containers (``gateway/backends/docker.py``) that see
the dataset only through their own bind mount at ``/home/jovyan/datasets/<project>/<dataset>`` (the same path as
the server's), so the cluster reading the Zarr store proves the mounts. Its results equal a serial computation over
the netCDF files on the host (the loader ``nsidc.open_sea_ice`` with Dask's synchronous scheduler), as in local mode.
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
from polartep_hub.settings import REPO_ROOT
from tests.docker.engine import container_name, docker, inspect

pytestmark = [pytest.mark.hub, pytest.mark.timeout(900)]

DAYS = 40  # as in local mode: two Zarr chunks (31 + 9 days)
HOME = "/home/jovyan"


def test_climatology_on_a_cluster_of_worker_containers_equals_a_serial_computation(
    docker_platform, docker_user, tmp_path
):
    import dask
    import xarray as xr

    name, token = docker_user("nbclim")
    project = f"dnb{os.getpid()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLARTEP_")}
    env.update(docker_platform.env)
    sample = subprocess.run(
        [str(Path(sys.executable).parent / "polartep"), "data", "sample", "--project", project, "--owner", name,
         "--days", str(DAYS), "--chips", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert sample.returncode == 0, sample.stderr

    docker_platform.spawn(name, token, {"profile": "interactive"})
    try:
        dataset = f"{HOME}/datasets/{project}/seaice-sample"
        mounts = inspect("container", container_name(name))["Mounts"]
        [folder] = [Path(m["Source"]) for m in mounts if m["Type"] == "bind" and m["Destination"] == dataset]
        notebook = (REPO_ROOT / "notebooks" / "sea-ice-climatology.ipynb").read_text()
        run = f"""
import json, os, subprocess, sys
work = os.path.expanduser("~/climatology-run")
os.makedirs(work, exist_ok=True)
with open(os.path.join(work, "in.ipynb"), "w") as f:
    f.write({notebook!r})
done = subprocess.run(
    [sys.executable, "-m", "papermill", "--no-progress-bar", "--log-level", "WARNING", "-k", "python3",
     "--cwd", work, os.path.join(work, "in.ipynb"), os.path.join(work, "out.ipynb"),
     "-p", "dataset", {dataset!r}, "-p", "workers", "2"],
    capture_output=True, text=True, timeout=600,
)
print(json.dumps({{"rc": done.returncode, "stderr": done.stderr[-4000:]}}))
"""
        ran = docker("exec", container_name(name), "python", "-c", run, check=False, timeout=700)
        assert ran.returncode == 0, ran.stderr
        result = json.loads(ran.stdout.strip().splitlines()[-1])
        assert result["rc"] == 0, result["stderr"]
        for produced in ("sea-ice-climatology.nc", "sea-ice-climatology.png", "out.ipynb"):
            docker(
                "cp", f"{container_name(name)}:{HOME}/climatology-run/{produced}", str(tmp_path / produced)
            )
    finally:
        docker_platform.stop_server(name)

    assert (tmp_path / "sea-ice-climatology.png").stat().st_size > 10_000
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    outputs = "".join(
        "".join(output.get("text", "")) for cell in executed["cells"] for output in cell.get("outputs", [])
    )
    assert f"{DAYS} days; extent" in outputs
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
        assert 10 < float(result["extent"].mean()) < 20
