"""OGC API - Processes execution and jobs against a real platform, with the built-in ``echo`` process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.helpers.processors import create_processor, notebook

pytestmark = pytest.mark.hub

OGC = "/services/platform/ogcapi"
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"


@pytest.fixture(scope="module")
def carol(platform):
    return "ogccarol", platform.create_user("ogccarol", plan="trial")


def test_echo_runs_synchronously_and_answers_its_inputs_as_results(platform, carol):
    _, token = carol
    inputs = {
        "stringInput": "polar",
        "doubleInput": {"value": 2.5},
        "boundingBoxInput": {
            "bbox": [-10, 60, 10, 80],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        },
        "arrayInput": [7, 8],
    }
    r = platform.api("POST", f"{OGC}/processes/echo/execution", token, json={"inputs": inputs}, timeout=120)
    if r.status_code == 201:  # a cold cluster on a loaded machine may take longer than the synchronous bound
        job = r.json()["jobID"]
        wait_for(
            lambda: platform.api("GET", f"{OGC}/jobs/{job}", token).json()["status"] == "successful", 180
        )
        r = platform.api("GET", f"{OGC}/jobs/{job}/results", token)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "stringOutput": "polar",
        "doubleOutput": 2.5,
        "integerOutput": 1,
        "boolOutput": True,
        "dateOutput": "2025-01-01T00:00:00+00:00",
        "boundingBoxOutput": [-10.0, 60.0, 10.0, 80.0],
        "arrayOutput": [7, 8],
    }


def test_respond_async_creates_a_job_with_location_status_and_results(platform, carol):
    _, token = carol
    r = platform.api("POST", f"{OGC}/processes/echo/execution", token, json={"inputs": {"integerInput": 5}},
                     headers={"Prefer": "respond-async"})  # fmt: skip
    assert r.status_code == 201, r.text
    info = r.json()
    assert r.headers["location"] == f"{platform.url}{OGC}/jobs/{info['jobID']}"
    assert r.headers["preference-applied"] == "respond-async"
    assert (info["processID"], info["type"], info["status"]) == ("echo", "process", "accepted")

    def finished():
        status = platform.api("GET", f"{OGC}/jobs/{info['jobID']}", token).json()
        return status if status["status"] in ("successful", "failed") else None

    status = wait_for(finished, 180, interval=0.5)
    assert status["status"] == "successful" and status["progress"] == 100
    assert [link["rel"] for link in status["links"]] == [
        "self",
        "http://www.opengis.net/def/rel/ogc/1.0/results",
    ]
    results = platform.api("GET", f"{OGC}/jobs/{info['jobID']}/results", token).json()
    assert results["integerOutput"] == 5


def test_jobs_are_paged_and_only_the_callers(platform, carol, new_user):
    _, token = carol
    page = platform.api("GET", f"{OGC}/jobs?limit=1", token).json()
    assert len(page["jobs"]) == 1
    assert [link["rel"] for link in page["links"]] == ["self", "next"]
    following = platform.api("GET", f"{OGC}/jobs?limit=1&offset=1", token).json()
    assert following["jobs"][0]["jobID"] != page["jobs"][0]["jobID"]
    other, other_token = new_user(plan="trial")
    assert platform.api("GET", f"{OGC}/jobs", other_token).json()["jobs"] == []
    job = page["jobs"][0]["jobID"]
    for path in (f"/jobs/{job}", f"/jobs/{job}/results"):
        r = platform.api("GET", OGC + path, other_token)
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"type": EXCEPTIONS + "no-such-job", "title": "No such job", "status": 404,
                            "detail": f"no run {job!r}"}  # fmt: skip
    r = platform.api("DELETE", f"{OGC}/jobs/{job}", other_token)
    assert r.status_code == 404


def test_unknown_process_and_wrong_inputs_get_the_standard_exceptions(platform, carol):
    _, token = carol
    r = platform.api("POST", f"{OGC}/processes/no-such-thing/execution", token, json={"inputs": {}})
    assert r.status_code == 404
    assert r.json()["type"] == EXCEPTIONS + "no-such-process"
    r = platform.api("POST", f"{OGC}/processes/echo/execution", token, json={"inputs": {"doubleInput": "x"}})
    assert r.status_code == 400
    assert r.json()["detail"] == "invalid inputs: doubleInput: must be a number"


def test_dismissing_a_running_job_stops_its_kernel(platform, carol):
    user, token = carol
    sleeper = notebook("seconds = 600\n", "import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\n"
                       "time.sleep(seconds)")  # fmt: skip
    create_processor(platform.settings.service_db_url, Path(platform.settings.processors_dir), "ogc-sleeper",
                     user, sleeper, inputs={"seconds": {"type": "integer", "default": 600}}, outputs={})  # fmt: skip
    r = platform.api("POST", f"{OGC}/processes/ogc-sleeper/execution", token, json={"inputs": {}},
                     headers={"Prefer": "respond-async"})  # fmt: skip
    job = r.json()["jobID"]
    pid_file = platform.home_of(user) / "processor-runs" / job / "kernel.pid"
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 120, what="the kernel"))
    r = platform.api("DELETE", f"{OGC}/jobs/{job}", token)
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["message"]) == ("dismissed", "cancelled; the kernel was stopped")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="the kernel to be gone")
    r = platform.api("GET", f"{OGC}/jobs/{job}/results", token)
    assert (r.status_code, r.json()["type"]) == (404, EXCEPTIONS + "no-such-job")
