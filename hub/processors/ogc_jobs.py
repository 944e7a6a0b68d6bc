"""OGC API - Processes 1.0 execution and jobs, under ``<prefix>ogcapi``: the same runs as ``runs_api.py``.

* ``POST /processes/{id}/execution`` ``{"inputs": {...}}`` — a run of the latest version. Without ``Prefer:
  respond-async`` the request waits up to ``SYNC_WAIT_SECONDS`` and answers 200 with the results (or the job's
  exception); a job still going then, or any job asked ``respond-async``, is answered 201 with ``Location:
  .../jobs/{id}`` and its ``statusInfo``.
* ``GET /jobs`` (``?limit=&offset=``) — the caller's jobs, newest first, with ``next``/``prev`` links;
  ``GET /jobs/{id}`` — its ``statusInfo``; ``GET /jobs/{id}/results`` — the results of a successful job;
  ``DELETE /jobs/{id}`` — dismiss it (a running job's kernel is stopped).

Rules this module guarantees:

* A job is a run (``runs.py``): the same validation (an input of the wrong type is 400 naming each), the same
  access rule (a process the caller may not see is ``no-such-process``, another user's job ``no-such-job``), the
  invoker's cluster and quota.
* Errors are OGC exception documents ``{"type", "title", "status", "detail"}`` with the standard's type URIs
  (``no-such-process``, ``no-such-job``, ``result-not-ready``), as ``application/json`` like the 1.0 schemas.
* ``GET /jobs`` and submissions are one indexed query each (``ix_processor_runs_invoker_created``); no per-row work
  beyond formatting the page.
* OGC qualified values are accepted: ``{"value": v}`` is ``v`` and a bounding-box object that matches the
  standard's ``bbox.yaml`` in 2D CRS84 is the box ``[west, south, east, north]`` (then checked like any box input);
  a 3D box or ``CRS84h`` is 400 naming the input. Value outputs that are objects (other than boxes) are answered as
  qualified values, so every results document matches ``results.yaml``.
* Every answer (``statusInfo``, ``jobList``, results, exceptions) validates against the OGC 1.0 schemas shipped in
  ``tests/processors/ogc_schemas/`` (tested).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from polartep_hub.processors import runs
from polartep_hub.processors.inputs import InputsInvalid
from polartep_hub.processors.models import FINAL_RUN_STATES, ProcessorRun
from polartep_hub.processors.ogc_processes import CRS84
from polartep_hub.processors.runs_api import RunStart, actor_of, cancel, start_run
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import Context, ServiceCaller
from polartep_hub.service.web.identity import Identity
from polartep_hub.usage.storage import StorageQuotaExceeded

router = APIRouter()

SYNC_WAIT_SECONDS = 30.0
DISMISS_WAIT_SECONDS = 15.0
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
PROBLEM = "application/json"  # OGC API - Processes 1.0 answers exceptions as JSON (exception.yaml)
JobId = Annotated[str, PathParam(max_length=36, description="the job's id")]
ProcessId = Annotated[str, PathParam(max_length=64, description="the process's id")]
_EXCEPTION = {"content": {PROBLEM: {"schema": {"type": "object"}}}}


def _problem(status: int, kind: str, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {
            "type": EXCEPTIONS + kind if kind else "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
        },
        status_code=status,
        media_type=PROBLEM,
    )


def _base(context: ServiceContext) -> str:
    return f"{context.config.public_url.rstrip('/')}{context.config.prefix}ogcapi"


def _time(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def status_info(context: ServiceContext, run: ProcessorRun, process: str) -> dict[str, Any]:
    """The OGC ``statusInfo`` of a run."""
    base = _base(context)
    progress = 100 if run.status == "successful" else 0
    if run.cells_total:
        progress = min(100, round(100 * run.cells_done / run.cells_total))
    links = [
        {"href": f"{base}/jobs/{run.id}", "rel": "self", "type": "application/json", "title": "this job"},
    ]
    if run.status == "successful":
        links.append(
            {
                "href": f"{base}/jobs/{run.id}/results",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                "type": "application/json",
                "title": "the job's results",
            }  # fmt: skip
        )
    info: dict[str, Any] = {
        "processID": process,
        "type": "process",
        "jobID": run.id,
        "status": run.status,
        "message": run.message,
        "created": _time(run.created_at),
        "updated": _time(run.updated_at),
        "progress": progress,
        "links": links,
    }
    if run.started_at is not None:
        info["started"] = _time(run.started_at)
    if run.finished_at is not None:
        info["finished"] = _time(run.finished_at)
    return info


CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"


def _is_bbox(value: Any) -> bool:
    """Whether ``value`` is an OGC bounding-box object (``bbox.yaml``: 4 or 6 numbers, a CRS of its enum)."""
    if not isinstance(value, dict) or "bbox" not in value or not set(value) <= {"bbox", "crs"}:
        return False
    box, crs = value["bbox"], value.get("crs", CRS84)
    return (
        isinstance(box, list)
        and len(box) in (4, 6)
        and all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in box)
        and crs in (CRS84, CRS84H)
    )


def _result_value(value: Any) -> Any:
    """A value output as the results document's ``inlineOrRefData`` allows it: an object that is not a bounding box
    is a qualified value (``{"value": ..., "mediaType": "application/json"}``), since a bare object would be read as
    a qualified value or a link."""
    if isinstance(value, dict) and not _is_bbox(value):
        return {"value": value, "mediaType": "application/json"}
    return value


def _results(context: ServiceContext, run: ProcessorRun, definition: dict[str, Any]) -> dict[str, Any]:
    """The results document: value outputs inline, file outputs as links to the run API."""
    results: dict[str, Any] = {name: _result_value(value) for name, value in (run.results or {}).items()}
    api = f"{context.config.public_url.rstrip('/')}{context.config.prefix}api/v1"
    for name, spec in (definition.get("outputs") or {}).items():
        if isinstance(spec, dict) and spec.get("type") == "file":
            results[name] = {
                "href": f"{api}/runs/{run.id}/outputs/{name}",
                "type": spec.get("mediaType") or "application/octet-stream",
            }
    return results


class BboxUnsupported(ValueError):
    """An OGC bounding-box input this platform cannot take (the message names the input)."""


def _plain_inputs(given: Any) -> Any:
    """OGC qualified values (``{"value": v}``) and bounding boxes (``{"bbox": [...], "crs": ...}``) as the plain
    values the run's inputs take (a box is ``[west, south, east, north]`` in CRS84 degrees); everything else as
    given. A bounding-box object must match the standard's ``bbox.yaml``; of it, only the 2D CRS84 box is taken:
    ``BboxUnsupported`` names the input otherwise."""
    if not isinstance(given, dict):
        return given
    plain = {}
    for name, value in given.items():
        if (
            isinstance(value, dict)
            and set(value) <= {"value", "mediaType", "encoding", "schema"}
            and "value" in value
        ):
            value = value["value"]
        elif isinstance(value, dict) and "bbox" in value and set(value) <= {"bbox", "crs"}:
            if not _is_bbox(value):
                raise BboxUnsupported(
                    f'{name}: a bounding box is {{"bbox": [4 or 6 numbers], "crs": {CRS84!r} or {CRS84H!r}}}'
                )
            if value.get("crs", CRS84) != CRS84 or len(value["bbox"]) != 4:
                raise BboxUnsupported(
                    f"{name}: only 2D boxes in {CRS84} are taken: [west, south, east, north] in degrees"
                )
            value = value["bbox"]
        plain[name] = value
    return plain


def _job(context: ServiceContext, caller: Identity, job_id: str) -> tuple[ProcessorRun, str, dict[str, Any]]:
    from polartep_hub.processors.models import ProcessorVersion

    with context.session() as session:
        run, process, _ = runs.run_of(session, job_id, actor_of(caller))
        definition = session.get(ProcessorVersion, run.version_id).definition
        session.expunge(run)
    return run, process, definition


@router.post(
    "/processes/{process_id}/execution",
    responses={
        200: {"description": "the results (synchronous execution)"},
        201: {"description": "the job was created (asynchronous execution); Location names it"},
        400: _EXCEPTION,
        404: _EXCEPTION,
        409: _EXCEPTION,
        413: _EXCEPTION,
    },
)
def execute(
    process_id: ProcessId,
    caller: ServiceCaller,
    context: Context,
    body: Annotated[dict[str, Any], Body(description='an OGC execute request: {"inputs": {...}}')],
    background: BackgroundTasks,
    prefer: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Execute a process: synchronously when it ends within the bound, else (or when asked) as a job."""
    try:
        inputs = _plain_inputs(body.get("inputs") or {})
    except BboxUnsupported as error:
        return _problem(400, "", "Invalid inputs", f"invalid inputs: {error}")
    if not isinstance(inputs, dict):
        return _problem(400, "", "Invalid inputs", "inputs: must be a JSON object of input names and values")
    wants_async = prefer is not None and "respond-async" in prefer.lower()
    try:
        # A job answered at once starts after its answer is sent (runs_api.start_run); a synchronous one now.
        run, process, _ = start_run(
            context, caller, process_id, RunStart(inputs=inputs), background if wants_async else None
        )
    except (runs.ProcessorNotFound, runs.ProcessorVersionNotFound) as error:
        return _problem(404, "no-such-process", "No such process", str(error))
    except InputsInvalid as error:
        return _problem(400, "", "Invalid inputs", str(error))
    except runs.ProcessorNotRunnable as error:
        return _problem(409, "", "The process cannot be run", str(error))
    except StorageQuotaExceeded as error:
        return _problem(413, "", "Storage quota exceeded", error.message)
    if not wants_async:
        deadline = time.monotonic() + SYNC_WAIT_SECONDS
        while time.monotonic() < deadline:
            current, process, definition = _job(context, caller, run.id)
            if current.status in FINAL_RUN_STATES:
                if current.status == "successful":
                    return JSONResponse(_results(context, current, definition), status_code=200)
                return _problem(500, "", f"The job {current.status}", current.message or current.status)
            time.sleep(0.25)
    current, process, _ = _job(context, caller, run.id)
    location = f"{_base(context)}/jobs/{run.id}"
    headers = {"Location": location}
    if wants_async:
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(status_info(context, current, process), status_code=201, headers=headers)


@router.get("/jobs", responses={200: {"description": "the caller's jobs"}})
def list_jobs(
    request: Request,
    caller: ServiceCaller,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> JSONResponse:
    """The caller's jobs, newest first, one page."""
    actor = actor_of(caller)
    with context.session() as session:
        rows = runs.list_runs(session, actor, limit=limit + 1, offset=offset)
        jobs = [status_info(context, run, process) for run, process, _ in rows[:limit]]
    base = f"{_base(context)}/jobs"
    links = [{"href": f"{base}?limit={limit}&offset={offset}", "rel": "self", "type": "application/json"}]
    if len(rows) > limit:
        links.append(
            {
                "href": f"{base}?limit={limit}&offset={offset + limit}",
                "rel": "next",
                "type": "application/json",
            }
        )
    if offset:
        links.append(
            {
                "href": f"{base}?limit={limit}&offset={max(0, offset - limit)}",
                "rel": "prev",
                "type": "application/json",
            }
        )
    return JSONResponse({"jobs": jobs, "links": links})


@router.get("/jobs/{job_id}", responses={200: {"description": "statusInfo"}, 404: _EXCEPTION})
def get_job(job_id: JobId, caller: ServiceCaller, context: Context) -> JSONResponse:
    """A job's status."""
    try:
        run, process, _ = _job(context, caller, job_id)
    except runs.RunNotFound as error:
        return _problem(404, "no-such-job", "No such job", str(error))
    return JSONResponse(status_info(context, run, process))


@router.get("/jobs/{job_id}/results", responses={200: {"description": "the results"}, 404: _EXCEPTION})
def get_results(job_id: JobId, caller: ServiceCaller, context: Context) -> JSONResponse:
    """A successful job's results; a job still going is ``result-not-ready``, a failed one its exception."""
    try:
        run, _, definition = _job(context, caller, job_id)
    except runs.RunNotFound as error:
        return _problem(404, "no-such-job", "No such job", str(error))
    if run.status == "successful":
        return JSONResponse(_results(context, run, definition))
    if run.status in FINAL_RUN_STATES:
        return _problem(500 if run.status == "failed" else 404, "" if run.status == "failed" else "no-such-job",
                         f"The job {run.status}", run.message or run.status)  # fmt: skip
    return _problem(404, "result-not-ready", "Result not ready", f"job {job_id} is {run.status}")


@router.delete("/jobs/{job_id}", responses={200: {"description": "statusInfo (dismissed)"}, 404: _EXCEPTION})
def dismiss_job(job_id: JobId, caller: ServiceCaller, context: Context) -> JSONResponse:
    """Dismiss a job: one not yet ended is stopped (an accepted one at once, a running one when its kernel is gone,
    waited for up to ``DISMISS_WAIT_SECONDS``); an ended job is answered as it is."""
    try:
        cancel(context, caller, job_id)
    except runs.RunNotFound as error:
        return _problem(404, "no-such-job", "No such job", str(error))
    except runs.RunNotCancellable:
        pass
    deadline = time.monotonic() + DISMISS_WAIT_SECONDS
    while True:
        run, process, _ = _job(context, caller, job_id)
        if run.status in FINAL_RUN_STATES or time.monotonic() > deadline:
            return JSONResponse(status_info(context, run, process))
        time.sleep(0.25)
