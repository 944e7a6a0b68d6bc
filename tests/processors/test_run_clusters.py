"""The invoker's warm run cluster is stopped ``processor_run_warm_seconds`` after its last run (a platform of its
own, with a short warm time)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.harness import RunningPlatform, wait_for
from tests.helpers.gateway import gateway_api
from tests.helpers.processors import create_processor, echo_notebook

pytestmark = pytest.mark.hub

API = "/services/platform/api/v1"


def test_a_run_cluster_stops_after_its_warm_time(tmp_path):
    platform = RunningPlatform(tmp_path, extra_env={"POLARTEP_PROCESSOR_RUN_WARM_SECONDS": "3"})
    with platform.running():
        token = platform.create_user("warmdave", plan="trial")
        create_processor(platform.settings.service_db_url, Path(platform.settings.processors_dir), "echo-warm",
                         "warmdave", echo_notebook())  # fmt: skip
        run_id = platform.api("POST", f"{API}/processors/echo-warm/runs", token, json={"inputs": {}}).json()[
            "id"
        ]

        def ended():
            r = platform.api("GET", f"{API}/runs/{run_id}", token)
            assert r.status_code == 200, (r.status_code, r.text)
            run = r.json()
            return run if run["status"] in ("successful", "failed", "dismissed") else None

        assert wait_for(ended, 240, interval=0.5)["status"] == "successful"

        def clusters():
            return list(gateway_api(platform, "GET", "clusters/", token).json())

        engine = create_engine(platform.settings.service_db_url)
        with engine.connect() as connection:
            name = connection.execute(
                text("SELECT cluster_name FROM processor_runs WHERE id = :id"), {"id": run_id}
            ).scalar_one()
        engine.dispose()
        assert name is not None
        wait_for(
            lambda: name not in clusters(),
            60,
            interval=0.5,
            what="the run cluster to stop after its warm time",
        )
        r = gateway_api(platform, "GET", f"clusters/{name}", token)
        assert r.status_code == 200 and r.json()["status"] in ("STOPPING", "STOPPED")
