"""OGC API - Processes execution and jobs against a real platform, with the built-in ``echo`` process.

Every job answer is validated against the OGC API - Processes 1.0 schemas shipped in ``tests/processors/ogc_schemas``
(``statusInfo``, ``jobList``, ``results``, ``exception``): synchronous 200, asynchronous 201 with ``Location``,
``/jobs`` pages, ``/jobs/{id}``, ``/results``, ``DELETE`` and each exception. The tests depend on their order (the
jobs listed are the ones the earlier tests made); ``--dist loadfile`` keeps the module whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.helpers.ogc_schemas import ogc_problems
from tests.helpers.processors import create_processor, notebook

pytestmark = pytest.mark.hub

OGC = "/services/platform/ogcapi"
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def valid(response, schema: str) -> dict:
    """The answer's JSON, asserted to be ``application/json`` and valid against the OGC 1.0 schema ``schema``."""
    assert response.headers["content-type"] == "application/json", response.headers["content-type"]
    document = response.json()
    assert ogc_problems(document, schema) == [], (schema, document)
    return document


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
    assert valid(r, "results.yaml") == {
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
    info = valid(r, "statusInfo.yaml")
    assert r.headers["location"] == f"{platform.url}{OGC}/jobs/{info['jobID']}"
    assert r.headers["preference-applied"] == "respond-async"
    assert (info["processID"], info["type"], info["status"]) == ("echo", "process", "accepted")

    def finished():
        status = valid(platform.api("GET", f"{OGC}/jobs/{info['jobID']}", token), "statusInfo.yaml")
        return status if status["status"] in ("successful", "failed") else None

    status = wait_for(finished, 180, interval=0.5)
    assert status["status"] == "successful" and status["progress"] == 100
    assert [link["rel"] for link in status["links"]] == [
        "self",
        "http://www.opengis.net/def/rel/ogc/1.0/results",
    ]
    results = valid(platform.api("GET", f"{OGC}/jobs/{info['jobID']}/results", token), "results.yaml")
    assert results["integerOutput"] == 5
    r = platform.api("GET", info["links"][0]["href"].split(platform.url, 1)[-1], token)
    assert valid(r, "statusInfo.yaml")["jobID"] == info["jobID"]


def test_jobs_are_paged_and_only_the_callers(platform, carol, new_user):
    _, token = carol
    page = valid(platform.api("GET", f"{OGC}/jobs?limit=1", token), "jobList.yaml")
    assert len(page["jobs"]) == 1
    assert [link["rel"] for link in page["links"]] == ["self", "next"]
    following = valid(platform.api("GET", f"{OGC}/jobs?limit=1&offset=1", token), "jobList.yaml")
    assert following["jobs"][0]["jobID"] != page["jobs"][0]["jobID"]
    assert [link["rel"] for link in following["links"]] == ["self", "prev"]  # two jobs so far
    whole = valid(platform.api("GET", f"{OGC}/jobs?limit=1000", token), "jobList.yaml")
    assert [link["rel"] for link in whole["links"]] == ["self"]
    assert {job["status"] for job in whole["jobs"]} == {"successful"}
    other, other_token = new_user(plan="trial")
    assert valid(platform.api("GET", f"{OGC}/jobs", other_token), "jobList.yaml") == {
        "jobs": [],
        "links": [
            {"href": f"{platform.url}{OGC}/jobs?limit=10&offset=0", "rel": "self", "type": "application/json"}
        ],
    }
    job = page["jobs"][0]["jobID"]
    for path in (f"/jobs/{job}", f"/jobs/{job}/results"):
        r = platform.api("GET", OGC + path, other_token)
        assert r.status_code == 404
        assert valid(r, "exception.yaml") == {"type": EXCEPTIONS + "no-such-job", "title": "No such job", "status": 404,
                            "detail": f"no run {job!r}"}  # fmt: skip
    r = platform.api("DELETE", f"{OGC}/jobs/{job}", other_token)
    assert r.status_code == 404
    assert valid(r, "exception.yaml")["type"] == EXCEPTIONS + "no-such-job"
    # Dismissing an ended job answers its status as it is.
    r = platform.api("DELETE", f"{OGC}/jobs/{job}", token)
    assert r.status_code == 200
    assert valid(r, "statusInfo.yaml")["status"] == "successful"


def test_unknown_process_and_wrong_inputs_get_the_standard_exceptions(platform, carol):
    _, token = carol
    r = platform.api("POST", f"{OGC}/processes/no-such-thing/execution", token, json={"inputs": {}})
    assert r.status_code == 404
    assert valid(r, "exception.yaml") == {
        "type": EXCEPTIONS + "no-such-process",
        "title": "No such process",
        "status": 404,
        "detail": "no processor 'no-such-thing'",
    }
    r = platform.api("POST", f"{OGC}/processes/echo/execution", token, json={"inputs": {"doubleInput": "x"}})
    assert r.status_code == 400
    assert valid(r, "exception.yaml")["detail"] == "invalid inputs: doubleInput: must be a number"
    r = platform.api("GET", f"{OGC}/jobs/{'0' * 32}", token)
    assert r.status_code == 404
    assert valid(r, "exception.yaml")["type"] == EXCEPTIONS + "no-such-job"


def test_bounding_box_inputs_are_the_standards_bbox_objects(platform, carol):
    """The execute request's bounding box (``bbox.yaml``): 2D CRS84 is taken, with or without ``crs``; a 3D box,
    ``CRS84h``, another CRS or a malformed box get 400 naming the input, and nothing runs."""
    _, token = carol
    before = platform.api("GET", f"{OGC}/jobs?limit=1000", token).json()["jobs"]
    box = {"bbox": [-10, 60, 10, 80], "crs": CRS84}
    assert ogc_problems(box, "bbox.yaml") == []
    for refused, detail in (
        ({"bbox": [-10, 60, 0, 10, 80, 100], "crs": "http://www.opengis.net/def/crs/OGC/0/CRS84h"},
         "only 2D boxes in " + CRS84 + " are taken: [west, south, east, north] in degrees"),
        ({"bbox": [-10, 60, 10, 80], "crs": "http://www.opengis.net/def/crs/EPSG/0/3413"},
         "a bounding box is {\"bbox\": [4 or 6 numbers], \"crs\": " + repr(CRS84) + " or "
         + repr("http://www.opengis.net/def/crs/OGC/0/CRS84h") + "}"),
        ({"bbox": [-10, 60, 10]}, None),
        ({"bbox": [-10, 60, 10, "80"]}, None),
    ):  # fmt: skip
        r = platform.api("POST", f"{OGC}/processes/echo/execution", token,
                         json={"inputs": {"boundingBoxInput": refused}})  # fmt: skip
        assert r.status_code == 400, r.text
        document = valid(r, "exception.yaml")
        assert document["detail"].startswith("invalid inputs: boundingBoxInput: "), document
        if detail is not None:
            assert document["detail"] == f"invalid inputs: boundingBoxInput: {detail}"
        assert ogc_problems(refused, "bbox.yaml") != [] or refused["bbox"][4:]
    # Out of range in CRS84: the run's own validation names it.
    r = platform.api("POST", f"{OGC}/processes/echo/execution", token,
                     json={"inputs": {"boundingBoxInput": {"bbox": [-10, 60, 10, 95]}}})  # fmt: skip
    assert r.status_code == 400
    assert valid(r, "exception.yaml")["detail"] == (
        "invalid inputs: boundingBoxInput: south and north must be within -90 .. 90 degrees"
    )
    assert platform.api("GET", f"{OGC}/jobs?limit=1000", token).json()["jobs"] == before
    # Without "crs" (its default is CRS84) the box is taken, asynchronously here.
    r = platform.api("POST", f"{OGC}/processes/echo/execution", token,
                     json={"inputs": {"boundingBoxInput": {"bbox": [-170.5, -80, 170, -60]}}},
                     headers={"Prefer": "respond-async"})  # fmt: skip
    assert r.status_code == 201, r.text
    job = valid(r, "statusInfo.yaml")["jobID"]
    wait_for(
        lambda: platform.api("GET", f"{OGC}/jobs/{job}", token).json()["status"] in ("successful", "failed"),
        180,
    )
    results = valid(platform.api("GET", f"{OGC}/jobs/{job}/results", token), "results.yaml")
    assert results["boundingBoxOutput"] == [-170.5, -80.0, 170.0, -60.0]


def test_dismissing_a_running_job_stops_its_kernel(platform, carol):
    user, token = carol
    sleeper = notebook("seconds = 600\n", "import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\n"
                       "time.sleep(seconds)")  # fmt: skip
    create_processor(platform.settings.service_db_url, Path(platform.settings.processors_dir), "ogc-sleeper",
                     user, sleeper, inputs={"seconds": {"type": "integer", "default": 600}}, outputs={})  # fmt: skip
    r = platform.api("POST", f"{OGC}/processes/ogc-sleeper/execution", token, json={"inputs": {}},
                     headers={"Prefer": "respond-async"})  # fmt: skip
    assert r.status_code == 201, r.text
    job = valid(r, "statusInfo.yaml")["jobID"]
    r = platform.api("GET", f"{OGC}/jobs/{job}/results", token)
    assert r.status_code == 404
    assert valid(r, "exception.yaml")["type"] == EXCEPTIONS + "result-not-ready"
    pid_file = platform.home_of(user) / "processor-runs" / job / "kernel.pid"
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 120, what="the kernel"))
    r = platform.api("DELETE", f"{OGC}/jobs/{job}", token)
    assert r.status_code == 200
    dismissed = valid(r, "statusInfo.yaml")
    assert (dismissed["status"], dismissed["message"]) == ("dismissed", "cancelled; the kernel was stopped")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="the kernel to be gone")
    r = platform.api("GET", f"{OGC}/jobs/{job}/results", token)
    assert (r.status_code, valid(r, "exception.yaml")["type"]) == (404, EXCEPTIONS + "no-such-job")


def test_a_failed_job_and_object_outputs_validate(platform, carol):
    """A synchronous job that fails answers an exception (500); a value output that is a JSON object is answered
    as a qualified value, so the results document validates."""
    user, token = carol
    processors_dir = Path(platform.settings.processors_dir)
    database_url = platform.settings.service_db_url
    failing = notebook("n = 1\n", "raise RuntimeError('broken on purpose')")
    create_processor(database_url, processors_dir, "ogc-failing", user, failing,
                     inputs={"n": {"type": "integer", "default": 1}}, outputs={})  # fmt: skip
    r = platform.api(
        "POST", f"{OGC}/processes/ogc-failing/execution", token, json={"inputs": {}}, timeout=120
    )
    if r.status_code == 201:  # a loaded machine: past the synchronous bound
        job = valid(r, "statusInfo.yaml")["jobID"]
        wait_for(lambda: platform.api("GET", f"{OGC}/jobs/{job}", token).json()["status"] == "failed", 180)
        r = platform.api("GET", f"{OGC}/jobs/{job}/results", token)
    assert r.status_code == 500, r.text
    document = valid(r, "exception.yaml")
    assert document["title"] == "The job failed" and "broken on purpose" in document["detail"]
    objects = notebook(
        "n = 1\n", "import json\njson.dump({'stats': {'mean': 1.5, 'n': n}}, open('outputs.json', 'w'))"
    )
    create_processor(database_url, processors_dir, "ogc-objects", user, objects,
                     inputs={"n": {"type": "integer", "default": 1}},
                     outputs={"stats": {"type": "value", "schema": {"type": "object"}}})  # fmt: skip
    r = platform.api("POST", f"{OGC}/processes/ogc-objects/execution", token, json={"inputs": {"n": 3}},
                     headers={"Prefer": "respond-async"})  # fmt: skip
    job = valid(r, "statusInfo.yaml")["jobID"]
    wait_for(lambda: platform.api("GET", f"{OGC}/jobs/{job}", token).json()["status"] == "successful", 180)
    results = valid(platform.api("GET", f"{OGC}/jobs/{job}/results", token), "results.yaml")
    assert results == {"stats": {"value": {"mean": 1.5, "n": 3}, "mediaType": "application/json"}}
