"""``polartep data sample`` and ``polartep datasets …`` against a running platform (local mode, system users).

Specification: the sample command creates the project (with ``--owner``) and the dataset, writes the daily files into
the dataset's folder (and a Zarr store, the items' second asset) and catalogues them, and the SAR-like chips into a
second dataset catalogued with the label extension; the project's member finds them in the STAC API and reads them with the
platform's xarray loader from inside their own server, through ``~/datasets/<project>/<dataset>``. The datasets
commands list, show, grant, revoke and delete through the service, and a refusal is one line and exit status 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.inside_server import run_inside_server

POLARTEP = str(Path(sys.executable).parent / "polartep")


def polartep(platform, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLARTEP_")}
    env.update(
        {
            "POLARTEP_STATE_DIR": platform.env["POLARTEP_STATE_DIR"],
            "POLARTEP_PUBLIC_URL": platform.env["POLARTEP_PUBLIC_URL"],
        }
    )
    return subprocess.run([POLARTEP, *args], capture_output=True, text=True, env=env, timeout=300)


def test_the_sample_is_catalogued_and_read_from_inside_a_members_server(platform, new_user):
    owner, token = new_user(plan="trial")
    project = f"samples{os.getpid()}"
    done = polartep(platform, "data", "sample", "--project", project, "--owner", owner, "--days", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote 3 daily files (")
    assert f"catalogued them as STAC collection {project}:seaice-sample" in done.stdout

    found = platform.api(
        "GET", "/services/platform/stac/search", token, params={"collections": f"{project}:seaice-sample"}
    )
    assert found.status_code == 200, found.text
    assert [f["id"] for f in found.json()["features"]] == [
        "seaice-conc-nh-20240101",
        "seaice-conc-nh-20240102",
        "seaice-conc-nh-20240103",
    ]
    assert found.json()["features"][0]["assets"]["zarr"]["href"] == (
        f"datasets/{project}/seaice-sample/seaice_conc_daily_nh_20240101-20240103_synthetic_v04r00.zarr"
    )
    assert "wrote 400 SYNTHETIC SAR-like ice/water chips (" in done.stdout
    chips = platform.api(
        "GET", "/services/platform/stac/search", token, params={"collections": f"{project}:sar-chips-sample"}
    )
    assert chips.status_code == 200, chips.text
    [item] = chips.json()["features"]
    assert item["id"] == "sar-chips-synthetic-seed0" and item["properties"]["label:type"] == "raster"
    assert item["stac_extensions"] == ["https://stac-extensions.github.io/label/v1.0.1/schema.json"]

    shown = polartep(platform, "datasets", "show", project, "seaice-sample")
    assert shown.returncode == 0, shown.stderr
    assert f"dataset:        {project}/seaice-sample" in shown.stdout
    assert "storage class:  hdd" in shown.stdout
    assert f"{project}/seaice-sample  hdd" in polartep(platform, "datasets", "list").stdout

    platform.spawn(owner, token)
    try:
        result = run_inside_server(
            platform,
            owner,
            f"""
            import json, os
            from polartep_hub.data.nsidc import open_sea_ice, extent_km2
            data = open_sea_ice(os.path.expanduser("~/datasets/{project}/seaice-sample"))
            extent = extent_km2(data.sea_ice_concentration) / 1e6
            print(json.dumps({{"shape": list(data.sea_ice_concentration.shape),
                              "extent": [round(float(v), 1) for v in extent.values]}}))
            """,
        )
    finally:
        platform.stop_server(owner)
    assert result["shape"] == [3, 448, 304]
    assert all(10 < v < 16 for v in result["extent"])


def test_datasets_commands_grant_revoke_delete_and_refuse_in_one_line(platform, new_user):
    owner, _ = new_user(plan="trial")
    other, _ = new_user(plan="trial")
    project, grantee = f"cli{os.getpid()}", f"cliread{os.getpid()}"
    for name, who in ((project, owner), (grantee, other)):
        r = platform.api(
            "POST",
            "/services/platform/api/v1/projects",
            platform.admin_token,
            json={"name": name, "owner": who},
        )
        assert r.status_code == 201, r.text
    created = polartep(
        platform, "datasets", "create", project, "raw", "--class", "ssd", "--title", "Raw scenes"
    )
    assert created.returncode == 0, created.stderr
    assert "title:          Raw scenes" in created.stdout
    granted = polartep(platform, "datasets", "grant", project, "raw", grantee)
    assert granted.returncode == 0 and f"granted to:     {grantee}" in granted.stdout
    revoked = polartep(platform, "datasets", "revoke", project, "raw", grantee)
    assert revoked.returncode == 0 and "granted to:     -" in revoked.stdout
    refused = polartep(platform, "datasets", "create", project, "../x")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "polartep datasets: invalid dataset name '../x': use 1-64 characters of lower-case letters, digits, '_' "
        "and '-', starting with a letter or a digit"
    )
    deleted = polartep(platform, "datasets", "delete", project, "raw")
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"deleted {project}/raw"
    assert polartep(platform, "datasets", "show", project, "raw").returncode == 1
