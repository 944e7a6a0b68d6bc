"""OGC API - Processes 1.0 (registry half) through the service app: every answer validates against the OGC 1.0
schemas shipped in the repo; listing shows only what the caller may see, paged; OWSLib lists and describes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import uvicorn

from polartep_hub.processors.ogc_processes import CONFORMANCE
from polartep_hub.service.config import ServiceConfig
from tests.harness import free_port
from tests.helpers.ogc_schemas import ogc_problems
from tests.helpers.processor_registry import definition, publish_body
from tests.helpers.service_fakes import PREFIX

OGC = "ogcapi"


@pytest.fixture
def service_config(database_url: str, tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        prefix=PREFIX, database_url=database_url, default_plan="trial", processors_dir=tmp_path / "processors"
    )


@pytest.fixture
def published(api):
    """alice: a private processor and a public one; bob: a public one."""
    for token, pid, visibility in (
        ("alice-token", "alice-private", "private"),
        ("alice-token", "alice-public", "public"),
        ("bob-token", "bob-public", "public"),
    ):
        answer = api.post(
            "api/v1/processors", token=token, json=publish_body(definition(pid, visibility=visibility))
        )
        assert answer.status_code == 201, answer.text


def test_landing_page_and_conformance_validate(api):
    landing = api.get(f"{OGC}/")
    assert landing.status_code == 200
    assert ogc_problems(landing.json(), "landingPage.yaml") == []
    rels = {link["rel"]: link["href"] for link in landing.json()["links"]}
    assert rels["service-desc"] == f"http://testserver{PREFIX}api/v1/openapi.json"
    assert (
        rels["http://www.opengis.net/def/rel/ogc/1.0/processes"]
        == f"http://testserver{PREFIX}ogcapi/processes"
    )
    conformance = api.get(f"{OGC}/conformance")
    assert ogc_problems(conformance.json(), "confClasses.yaml") == []
    assert conformance.json()["conformsTo"] == CONFORMANCE
    assert len(CONFORMANCE) == 7
    page = api.get(f"{OGC}/conformance", headers={"Accept": "text/html,application/json;q=0.9"})
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<li>http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss</li>" in page.text
    assert api.get(f"{OGC}/?f=html").headers["content-type"] == "text/html; charset=utf-8"


def test_processes_lists_what_the_caller_may_see_and_pages(api, published):
    alice = api.get(f"{OGC}/processes", token="alice-token").json()
    assert ogc_problems(alice, "processList.yaml") == []
    # The built-in echo process (the OGC test suite's) is public on every platform.
    assert [p["id"] for p in alice["processes"]] == ["alice-private", "alice-public", "bob-public", "echo"]
    bob = api.get(f"{OGC}/processes", token="bob-token").json()
    assert [p["id"] for p in bob["processes"]] == ["alice-public", "bob-public", "echo"]
    first = api.get(f"{OGC}/processes?limit=1", token="alice-token").json()
    assert [p["id"] for p in first["processes"]] == ["alice-private"]
    next_link = next(link["href"] for link in first["links"] if link["rel"] == "next")
    assert next_link == f"http://testserver{PREFIX}ogcapi/processes?limit=1&offset=1"
    second = api.get(f"{OGC}/processes?limit=1&offset=1", token="alice-token").json()
    assert [p["id"] for p in second["processes"]] == ["alice-public"]
    last = api.get(f"{OGC}/processes?limit=1&offset=3", token="alice-token").json()
    assert [link["rel"] for link in last["links"]] == ["self", "alternate", "prev"]
    summary = first["processes"][0]
    assert (summary["version"], summary["jobControlOptions"], summary["outputTransmission"]) == (
        "1.0.0",
        ["sync-execute", "async-execute"],
        ["value", "reference"],
    )
    html = api.get(f"{OGC}/processes?f=html", token="alice-token")
    assert html.status_code == 200 and "alice-private" in html.text


def test_a_process_description_is_generated_from_the_definition(api, published):
    answer = api.get(f"{OGC}/processes/alice-private", token="alice-token")
    assert answer.status_code == 200
    description = answer.json()
    assert ogc_problems(description, "process.yaml") == []
    inputs = description["inputs"]
    assert inputs["threshold"] == {
        "title": "threshold",
        "minOccurs": 0,
        "maxOccurs": 1,
        "schema": {"type": "number", "minimum": 0, "maximum": 100, "default": 15},
    }
    assert inputs["start"]["schema"] == {"type": "string", "format": "date", "default": "2025-01-01"}
    assert inputs["start"]["title"] == "First day"
    assert inputs["region"]["schema"] == {
        "type": "string",
        "enum": ["arctic", "antarctic"],
        "default": "arctic",
    }
    assert inputs["area"]["schema"]["format"] == "ogc-bbox"
    assert inputs["area"]["schema"]["default"] == {
        "bbox": [-180, 60, 180, 90],
        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    }
    assert (inputs["years"]["minOccurs"], inputs["years"]["schema"]) == (
        1,
        {"type": "array", "items": {"type": "integer", "minimum": 1979}, "minItems": 1, "maxItems": 100},
    )
    assert inputs["label"]["minOccurs"] == 0
    assert description["outputs"] == {
        "plot": {
            "title": "Extent map",
            "schema": {"type": "string", "contentEncoding": "binary", "contentMediaType": "image/png"},
        },
        "mean_extent": {"title": "Mean extent", "schema": {"type": "number"}},
    }
    execute = next(link for link in description["links"] if link["rel"].endswith("/execute"))
    assert execute["href"] == f"http://testserver{PREFIX}ogcapi/processes/alice-private/execution"


def test_exceptions_are_the_standards(api, published):
    for token in ("bob-token", "alice-token"):
        pid = "alice-private" if token == "bob-token" else "nothing-here"
        answer = api.get(f"{OGC}/processes/{pid}", token=token)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/json"
        assert ogc_problems(answer.json(), "exception.yaml") == []
        assert answer.json() == {
            "type": "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-process",
            "title": "Not found",
            "status": 404,
            "detail": f"no process {pid!r} (or it is not shared with you)",
        }
    anonymous = api.get(f"{OGC}/processes")
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "type": "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/unauthorized",
        "title": "Unauthorized",
        "status": 401,
        "detail": "authentication required: send 'Authorization: token <JupyterHub API token>'",
    }


@pytest.fixture
def served(app, published):
    """The app on a real port (OWSLib speaks HTTP through requests)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}{PREFIX}ogcapi/"
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_owslib_lists_and_describes(served):
    from owslib.ogcapi.processes import Processes

    client = Processes(served, headers={"Authorization": "token bob-token"})
    assert [p["id"] for p in client.processes()] == ["alice-public", "bob-public", "echo"]
    described = client.process("bob-public")
    assert (described["id"], described["version"], sorted(described["inputs"])[:2]) == (
        "bob-public",
        "1.0.0",
        ["area", "days"],
    )
