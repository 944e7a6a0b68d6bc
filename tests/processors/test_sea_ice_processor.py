"""The worked example of docs/processors.md, ``notebooks/sea-ice-extent-processor.ipynb`` with its definition
``notebooks/sea-ice-extent-processor.json``, published and run as a processor on the sample data (local mode).

Specification: the shipped definition is valid for the shipped notebook (the service publishes it as it is); a run
with a date range, a region and a threshold given reads the member's dataset through ``~/datasets/...`` with the
platform's loader on the member's own run cluster and writes the declared outputs: the CSV has one row per day of
the range, the PNG is a real plot, the value outputs match the CSV, and the output notebook shows the injected values.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polartep_hub.settings import REPO_ROOT
from tests.harness import wait_for

pytestmark = pytest.mark.hub

API = "/services/platform/api/v1"
NOTEBOOK = REPO_ROOT / "notebooks" / "sea-ice-extent-processor.ipynb"
DEFINITION = REPO_ROOT / "notebooks" / "sea-ice-extent-processor.json"


def test_the_sea_ice_extent_processor_publishes_and_runs_on_the_sample_data(platform, new_user):
    owner, token = new_user(plan="trial")
    project = f"ice{os.getpid()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLARTEP_")}
    env.update(
        POLARTEP_STATE_DIR=platform.env["POLARTEP_STATE_DIR"],
        POLARTEP_PUBLIC_URL=platform.env["POLARTEP_PUBLIC_URL"],
    )
    sample = subprocess.run(
        [str(Path(sys.executable).parent / "polartep"), "data", "sample", "--project", project,
         "--owner", owner, "--days", "4"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert sample.returncode == 0, sample.stderr

    definition = json.loads(DEFINITION.read_text())
    published = platform.api(
        "POST",
        f"{API}/processors",
        token,
        json={"definition": definition, "notebook": base64.b64encode(NOTEBOOK.read_bytes()).decode()},
    )
    assert published.status_code == 201, published.text
    assert published.json() == {"id": "sea-ice-extent", "sequence": 1, "version": "1.0.0", "created": True}

    # The server makes the ~/datasets links; the run then reads them on the owner's own run cluster.
    platform.spawn(owner, token)
    try:
        inputs = {
            "data_folder": f"datasets/{project}/seaice-sample",
            "start": "2024-01-02",
            "end": "2024-01-04",
            "region": [-180, 70, 180, 90],
            "threshold": 0.3,
        }
        r = platform.api("POST", f"{API}/processors/sea-ice-extent/runs", token, json={"inputs": inputs})
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

    assert run["inputs"] == {**inputs, "region": [-180.0, 70.0, 180.0, 90.0], "title": "Sea-ice extent"}
    table = platform.api("GET", f"{API}/runs/{run_id}/outputs/table", token)
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [row["time"] for row in rows] == ["2024-01-02", "2024-01-03", "2024-01-04"]
    extents = [float(row["extent_million_km2"]) for row in rows]
    assert all(0.5 < extent < 15 for extent in extents), extents
    assert run["results"] == {
        "days": 3,
        "mean_extent_million_km2": pytest.approx(sum(extents) / 3, abs=1e-3),
    }
    plot = platform.api("GET", f"{API}/runs/{run_id}/outputs/plot", token)
    assert plot.content[:8] == b"\x89PNG\r\n\x1a\n" and len(plot.content) > 10_000
    cells = platform.api("GET", f"{API}/runs/{run_id}/notebook", token).json()["cells"]
    injected = "".join(
        next(c for c in cells if "injected-parameters" in c["metadata"].get("tags", []))["source"]
    )
    assert 'start = "2024-01-02"\n' in injected and "threshold = 0.3\n" in injected
    assert "region = [-180.0, 70.0, 180.0, 90.0]\n" in injected
