"""HTTP API of processor runs, under ``<prefix>api/v1``.

* ``POST /processors/{name}/runs`` ``{"inputs": {...}, "version": "1.2.0" | 2 | null}`` — start a run of the latest
  (or the named) version on the caller's own cluster and quota: 201 with the run (``accepted``); 400 naming every
  input that is wrong; 404 for a processor the caller may not see; 409 for one that cannot run.
* ``GET /processors/{name}/form`` (``?version=``) — the run form's fields, generated from the version's definition
  (``form.py``): what the JupyterLab run form and the service's page draw; 404 for a processor the caller may not
  see, 409 for one that cannot run (the same refusals as starting a run).
* ``GET /runs`` (``?limit=&offset=&processor=``) — the caller's runs, newest first; ``GET /runs/{id}`` — one run:
  status, progress (cells done / total), message, timestamps, inputs, value results, and ``published``: the
  dashboards published from its results (``runs.RUN_RESULT_LINKS``).
* ``GET /runs/{id}/log`` — the run's log (text); ``GET /runs/{id}/notebook`` — the executed notebook;
  ``GET /runs/{id}/outputs/{output}`` — a declared file output; ``POST /runs/{id}/cancel`` — stop it (202).

Rules this module guarantees:

* A run and everything it produced is its invoker's: anyone else, the processor's owner and administrators
  included, is answered 404 (``runs.run_of``).
* Files are read from the invoker's run folder without following any symbolic link, only regular files owned by
  the home's owner (``run_files.py``); they are sent as downloads (``Content-Disposition: attachment``, ``nosniff``), never rendered on the service's origin.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from polartep_hub.processors import form, run_task, runs
from polartep_hub.processors.execution import CANCEL_REQUESTED
from polartep_hub.processors.models import FINAL_RUN_STATES, ProcessorRun
from polartep_hub.processors.notebook_store import NotebookStore
from polartep_hub.processors.runs import RunFileUnavailable
from polartep_hub.projects.store import Actor
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import Context, ServiceCaller
from polartep_hub.service.web.identity import Identity
from polartep_hub.usage.storage import check_account_write

router = APIRouter()

_NAME = {"pattern": "^[a-z][a-z0-9-]{1,62}$"}
ProcessorName = Annotated[
    str, PathParam(max_length=64, description="the processor's id", json_schema_extra=_NAME)
]
RunId = Annotated[str, PathParam(max_length=36, description="the run's id (a UUID)")]
_NO_PROCESSOR = {404: {"description": "no such processor (or the caller may not see it), or no such version"}}
_NO_RUN = {404: {"description": "no such run of the caller (or no such file of it)"}}


class RunStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(
        default_factory=dict, description="input values by name; defaults fill the rest"
    )
    version: str | int | None = Field(
        default=None,
        description="a published version (semver) or its sequence number; the latest when absent",
    )


class Progress(BaseModel):
    cells_done: int
    cells_total: int


class RunOut(BaseModel):
    id: str = Field(description="the run's id (also its OGC job id)")
    processor: str
    version: str
    status: str = Field(description="accepted, running, successful, failed or dismissed")
    folder: str = Field(
        description="the run's folder, relative to the invoker's home (open it in JupyterLab)"
    )
    message: str
    inputs: dict[str, Any] = Field(description="the values injected (given and defaults)")
    results: dict[str, Any] | None = Field(description="value outputs once successful")
    progress: Progress
    timeout_seconds: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class ResultLink(BaseModel):
    kind: str = Field(description="what was published from the results (dashboard)")
    id: str
    title: str
    url: str = Field(description="its address, below the hub's public URL")


class RunDetail(RunOut):
    published: list[ResultLink] = Field(
        default_factory=list, description="what was published from this run's results: its dashboards"
    )


class RunList(BaseModel):
    runs: list[RunOut]
    total: int
    limit: int
    offset: int


def actor_of(caller: Identity) -> Actor:
    """The caller as the processors' access rules see it (services other than the hub are nobody)."""
    if caller.is_user:
        return Actor(name=caller.name, admin=caller.admin)
    return Actor(name=None, admin=caller.is_hub)


def run_out(run: ProcessorRun, processor: str, version: str) -> RunOut:
    return RunOut(
        id=run.id,
        processor=processor,
        version=version,
        status=run.status,
        folder=f"{run_task.RUNS_FOLDER}/{run.id}",
        message=run.message,
        inputs=run.inputs,
        results=run.results,
        progress=Progress(cells_done=run.cells_done, cells_total=run.cells_total),
        timeout_seconds=run.timeout_seconds,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        updated_at=run.updated_at,
    )


def start_run(
    context: ServiceContext,
    caller: Identity,
    name: str,
    body: RunStart,
    background: BackgroundTasks | None = None,
) -> tuple[ProcessorRun, str, str]:
    """Accept a run (committed) and hand it to the executor; shared by this API and OGC's execution.

    With ``background`` the executor gets the run once the response is sent: its driver thread (a hub token, a
    gateway connection, a Dask client) otherwise competes for the interpreter with the response still being written,
    which added several milliseconds to the submission. The run is committed as ``accepted`` either way, and a run
    whose hand-over a crash prevented is found by the executor's reconciliation."""
    actor = actor_of(caller)
    if actor.name is None:
        raise runs.ProcessorNotRunnable("only users run processors (on their own quota)")
    store = NotebookStore(Path(context.config.processors_dir or ".") / "notebooks")
    with context.session() as session:
        version = runs.find_version(session, name, actor, body.version)
        # The run writes its outputs into the invoker's home: refused (413) when that class is full.
        check_account_write(session, context.catalogue, actor.name, context.config.home_storage_class, 0)
        notebook = store.read(version.notebook_sha256)
        run = runs.accept_run(
            session,
            processor_name=name,
            actor=actor,
            given=body.inputs,
            version=body.version,
            notebook=notebook,
            version_row=version,
        )
        session.refresh(run)
        session.expunge(run)
        version_label = version.version
    executor = getattr(context, "processor_runs", None)
    if executor is not None:
        if background is not None:
            background.add_task(executor.start, run.id)
        else:
            executor.start(run.id)
    return run, name, version_label


@router.post(
    "/processors/{name}/runs",
    response_model=RunOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "an input is wrong: the detail names each one and what to fix"},
        **_NO_PROCESSOR,
        409: {"description": "the processor cannot be run now (withdrawn, or its notebook is broken)"},
        413: {"description": "the invoker's storage (where the outputs go) is over quota"},
    },
)
def create_run(
    name: ProcessorName, body: RunStart, caller: ServiceCaller, context: Context, background: BackgroundTasks
) -> RunOut:
    """Start a run of processor ``name`` on the caller's own Dask Gateway cluster and quota."""
    run, processor, version = start_run(context, caller, name, body, background)
    return run_out(run, processor, version)


class FormField(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(description="the input's name (the form field's name)")
    type: str = Field(description="the input's type in the definition")
    widget: str = Field(
        description="text, number, checkbox, date, select, bbox or list (see processors/form.py)"
    )
    label: str
    help: str = Field(description="the input's description")
    required: bool
    has_default: bool
    value: Any = Field(description="the default as the form shows it")


class FileOutput(BaseModel):
    name: str
    path: str = Field(description="relative to the run's folder")
    media_type: str
    description: str


class RunForm(BaseModel):
    id: str
    title: str
    description: str
    version: str
    sequence: int
    fields: list[FormField]
    outputs: list[FileOutput]


def run_form(context: ServiceContext, caller: Identity, name: str, version: str | int | None) -> RunForm:
    """The form of the version a run would use, refused as starting a run would be (404, 409)."""
    with context.session() as session:
        found = runs.find_version(session, name, actor_of(caller), version)
        document = found.definition
        return RunForm(
            id=name,
            title=str(document.get("title") or name),
            description=str(document.get("description") or ""),
            version=found.version,
            sequence=found.sequence,
            fields=[FormField(**field) for field in form.form_fields(document)],
            outputs=[FileOutput(**output) for output in form.file_outputs(document)],
        )


@router.get(
    "/processors/{name}/form",
    response_model=RunForm,
    responses={**_NO_PROCESSOR, 409: {"description": "the processor cannot be run (withdrawn)"}},
)
def get_run_form(
    name: ProcessorName,
    caller: ServiceCaller,
    context: Context,
    version: Annotated[str | None, Query(max_length=64, description="a version (semver) or sequence")] = None,
) -> RunForm:
    """The run form of processor ``name`` (its latest or the named version): one field per input."""
    return run_form(context, caller, name, version_ref(version))


def version_ref(version: str | None) -> str | int | None:
    """A version as a query gives it: digits are a sequence number, anything else a semver."""
    return int(version) if version is not None and version.isdigit() else version


@router.get("/runs", response_model=RunList)
def list_my_runs(
    caller: ServiceCaller,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    processor: Annotated[str | None, Query(max_length=64)] = None,
) -> RunList:
    """The caller's runs, newest first."""
    actor = actor_of(caller)
    with context.session() as session:
        rows = runs.list_runs(session, actor, limit=limit, offset=offset, processor=processor)
        total = runs.count_runs(session, actor)
        return RunList(runs=[run_out(*row) for row in rows], total=total, limit=limit, offset=offset)


@router.get("/runs/{run_id}", response_model=RunDetail, responses=_NO_RUN)
def get_run(run_id: RunId, caller: ServiceCaller, context: Context) -> RunDetail:
    """One run of the caller: status, progress, message, timestamps, value results, and the dashboards published
    from its results."""
    with context.session() as session:
        out = run_out(*runs.run_of(session, run_id, actor_of(caller)))
        links = [ResultLink(**link) for link in runs.result_links(session, run_id)]
    return RunDetail(**out.model_dump(), published=links)


@router.post(
    "/runs/{run_id}/cancel",
    response_model=RunOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_NO_RUN, 409: {"description": "the run already ended"}},
)
def cancel_run(run_id: RunId, caller: ServiceCaller, context: Context) -> RunOut:
    """Stop a run: an accepted run is dismissed at once; a running one when its kernel is stopped."""
    return cancel(context, caller, run_id)


def cancel(context: ServiceContext, caller: Identity, run_id: str) -> RunOut:
    """Dismiss or stop the caller's run (shared with OGC's ``DELETE /jobs/{id}``)."""
    actor = actor_of(caller)
    with context.session() as session:
        run, processor, version = runs.run_of(session, run_id, actor)
        if run.status in FINAL_RUN_STATES:
            raise runs.RunNotCancellable(f"run {run_id} already ended ({run.status})")
        if run.status == "accepted":
            runs.finish(session, run_id, "dismissed", "cancelled before it started")
        else:
            runs.set_message(session, run_id, CANCEL_REQUESTED)  # committed before the event is set
    executor = getattr(context, "processor_runs", None)
    if executor is not None:
        executor.cancel(run_id)
    with context.session() as session:
        return run_out(*runs.run_of(session, run_id, actor))


def read_run_file(context: ServiceContext, invoker: str, run_id: str, relative: str) -> bytes:
    """The bytes of ``relative`` in the invoker's run folder (``run_files.py``: no links, plain files only)."""
    executor = getattr(context, "processor_runs", None)
    if executor is None:
        raise RunFileUnavailable(
            f"the run's files are in the invoker's home, ~/{run_task.RUNS_FOLDER}/{run_id}/ (open them in JupyterLab)"
        )
    return executor.read_run_file(invoker, run_id, relative)


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _invoker_run(context: ServiceContext, caller: Identity, run_id: str) -> tuple[ProcessorRun, str]:
    actor = actor_of(caller)
    with context.session() as session:
        run, processor, _ = runs.run_of(session, run_id, actor)
        session.expunge(run)
    return run, processor


@router.get(
    "/runs/{run_id}/log",
    response_class=Response,
    responses={**_NO_RUN, 200: {"content": {"text/plain": {}}, "description": "the run's log"}},
)
def get_run_log(run_id: RunId, caller: ServiceCaller, context: Context) -> Response:
    """The run's log: kernel output and the platform's lines (live while it runs)."""
    run, _ = _invoker_run(context, caller, run_id)
    assert caller.name is not None
    try:
        text = read_run_file(context, caller.name, run_id, run_task.LOG_FILE).decode("utf-8", "replace")
    except RunFileUnavailable:
        executor = getattr(context, "processor_runs", None)
        lines = executor.live_log(run_id) if executor is not None else None
        if lines is None:
            if run.status == "accepted":
                text = ""
            else:
                raise
        else:
            text = "".join(line + "\n" for line in lines)
    return Response(
        text, media_type="text/plain; charset=utf-8", headers={"X-Content-Type-Options": "nosniff"}
    )


@router.get(
    "/runs/{run_id}/notebook",
    response_class=Response,
    responses={
        **_NO_RUN,
        200: {"content": {"application/x-ipynb+json": {}}, "description": "the output notebook"},
    },
)
def get_run_notebook(run_id: RunId, caller: ServiceCaller, context: Context) -> Response:
    """The executed notebook (as far as it ran), with the injected parameters cell."""
    _invoker_run(context, caller, run_id)
    assert caller.name is not None
    content = read_run_file(context, caller.name, run_id, run_task.OUTPUT_NOTEBOOK)
    return _download(content, "application/x-ipynb+json", f"{run_id}.ipynb")


@router.get(
    "/runs/{run_id}/outputs/{output}",
    response_class=Response,
    responses={**_NO_RUN, 200: {"content": {"application/octet-stream": {}}, "description": "a file output"}},
)
def get_run_output(
    run_id: RunId,
    output: Annotated[str, PathParam(max_length=128)],
    caller: ServiceCaller,
    context: Context,
) -> Response:
    """A declared file output of the run (value outputs are in the run's ``results``)."""
    run, _ = _invoker_run(context, caller, run_id)
    assert caller.name is not None
    with context.session() as session:
        from polartep_hub.processors.models import ProcessorVersion

        definition = session.get(ProcessorVersion, run.version_id).definition
    spec = (definition.get("outputs") or {}).get(output)
    if not isinstance(spec, dict) or spec.get("type") != "file":
        raise RunFileUnavailable(f"the processor declares no file output {output!r}")
    relative = str(spec.get("path", ""))
    content = read_run_file(context, caller.name, run_id, relative)
    media_type = str(spec.get("mediaType") or "application/octet-stream")
    return _download(content, media_type, os.path.basename(relative) or output)
