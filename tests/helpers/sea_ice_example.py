"""The worked example of docs/processors.md (``notebooks/sea-ice-extent-processor.ipynb`` and its definition) as the
processor tests use it in every mode: sample data for a member, publishing, the run's inputs, and the checks of a
successful run's outputs (they are the same whether the notebook ran on a local or a container worker).
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
from typing import Any

import pytest

from polartep_hub.settings import REPO_ROOT

API = "/services/platform/api/v1"
NOTEBOOK = REPO_ROOT / "notebooks" / "sea-ice-extent-processor.ipynb"
DEFINITION = REPO_ROOT / "notebooks" / "sea-ice-extent-processor.json"


def write_sample(platform, project: str, owner: str, days: int = 4) -> None:
    """``polartep data sample``: ``days`` synthetic days from 2024-01-01 as dataset ``seaice-sample`` of ``project``
    (created, owned by ``owner``), through the platform's own CLI and state."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLARTEP_")}
    env.update(
        POLARTEP_STATE_DIR=platform.env["POLARTEP_STATE_DIR"],
        POLARTEP_PUBLIC_URL=platform.env["POLARTEP_PUBLIC_URL"],
    )
    sample = subprocess.run(
        [str(Path(sys.executable).parent / "polartep"), "data", "sample", "--project", project,
         "--owner", owner, "--days", str(days)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert sample.returncode == 0, sample.stderr


def publish(platform, token: str) -> None:
    """Publish the shipped notebook with the shipped definition, as they are."""
    published = platform.api(
        "POST",
        f"{API}/processors",
        token,
        json={
            "definition": json.loads(DEFINITION.read_text()),
            "notebook": base64.b64encode(NOTEBOOK.read_bytes()).decode(),
        },
    )
    assert published.status_code == 201, published.text
    assert published.json() == {"id": "sea-ice-extent", "sequence": 1, "version": "1.0.0", "created": True}


def inputs(project: str) -> dict[str, Any]:
    """Three days, a region and a threshold, reading the member's sample through ``~/datasets/...``."""
    return {
        "data_folder": f"datasets/{project}/seaice-sample",
        "start": "2024-01-02",
        "end": "2024-01-04",
        "region": [-180, 70, 180, 90],
        "threshold": 0.3,
    }


def check_outputs(platform, token: str, run: dict[str, Any], given: dict[str, Any]) -> None:
    """A successful run of ``inputs``: one CSV row per day, a real PNG, value outputs that match the CSV, and the
    injected values in the output notebook (all read through the run API)."""
    run_id = run["id"]
    assert run["inputs"] == {**given, "region": [-180.0, 70.0, 180.0, 90.0], "title": "Sea-ice extent"}
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
