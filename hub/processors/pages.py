"""Processors as pages of the platform service, for people who never open a notebook.

* ``GET <prefix>processors`` — the processors the signed-in user may run (their own, shared with their projects,
  public) and their latest runs.
* ``GET <prefix>processors/{id}`` and ``GET <prefix>processors/{id}/versions/{version}`` — the run form of the
  latest (or that) version: the fields of ``form.form_fields`` (the same description the JupyterLab form draws),
  defaults filled, descriptions as help, required marked. Stable URLs.
* ``POST`` to the same URL — start a run exactly as ``POST api/v1/processors/{id}/runs`` does (``runs_api.start_run``),
  then redirect (303) to ``<prefix>processors/runs/{run id}``; a 400 of the service shows each message beside its field.
* ``GET <prefix>processors/runs/{run id}`` — the run: status, progress (cells done / total), the log's end, and
  links to the output notebook and file outputs (downloads of the run API, and the same files in JupyterLab). While
  the run is not over the page reloads itself every ``REFRESH_SECONDS`` (``<meta http-equiv="refresh">``: the pages'
  CSP allows no script). While the run is accepted or running the page carries a Cancel form.
* ``POST <prefix>processors/runs/{run id}/cancel`` — cancel the run exactly as ``POST api/v1/runs/{id}/cancel`` does
  (``runs_api.cancel``: dismissed at once when accepted, its kernel stopped when running), then redirect (303) to the
  run's page. A run that already ended is left as it is and its page shows how it ended.

Rules this module guarantees:

* The pages decide nothing the API would not: the processor and run are looked up with the caller as actor
  (``runs.find_version``, ``runs.run_of``), so what another user may not see or run is 404 here as there, and a run's
  page is its invoker's alone.
* A form (a run's or a cancel's) is posted only with the browser session and its ``_xsrf`` (``pages.BrowserFormCaller``): a forged or
  missing token is 403 and starts nothing. Every value is escaped (Jinja2 autoescaping); pages carry ``PAGE_CSP``.
* Without a session, a page sends the browser to the service's login, which brings it back.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, status
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response

from polartep_hub.processors import form, registry, run_task, runs
from polartep_hub.processors.inputs import InputsInvalid
from polartep_hub.processors.models import FINAL_RUN_STATES, ProcessorVersion
from polartep_hub.processors.runs import RunFileUnavailable, RunNotCancellable
from polartep_hub.processors.runs_api import (
    RunStart,
    actor_of,
    cancel,
    read_run_file,
    run_form,
    start_run,
    version_ref,
)
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import Context, optional_identity
from polartep_hub.service.web.identity import Identity
from polartep_hub.service.web.pages import BrowserFormCaller, page_xsrf, read_form, render_page

page_router = APIRouter()

REFRESH_SECONDS = 2
LOG_TAIL_CHARS = 20_000
_NAME = {"pattern": "^[a-z][a-z0-9-]{1,62}$"}
ProcessorName = Annotated[str, PathParam(max_length=64, json_schema_extra=_NAME)]
VersionRef = Annotated[str, PathParam(max_length=64)]
RunId = Annotated[str, PathParam(max_length=36)]
OptionalCaller = Annotated[Identity | None, Depends(optional_identity)]


def _login(context: ServiceContext, path: str) -> RedirectResponse:
    prefix = context.config.prefix
    return RedirectResponse(f"{prefix}login?next={quote(prefix + path)}", status_code=status.HTTP_302_FOUND)


def _form_path(name: str, version: str | None) -> str:
    return f"processors/{name}" + (f"/versions/{quote(version, safe='')}" if version else "")


@page_router.get("/processors", include_in_schema=False)
def processors_page(context: Context, identity: OptionalCaller) -> Response:
    """The processors the signed-in user may run, and their latest runs."""
    if identity is None or not identity.is_user:
        return _login(context, "processors")
    actor = actor_of(identity)
    with context.session() as session:
        seen = [p for p in registry.visible(session, actor) if p.withdrawn_at is None]
        newest = registry.newest_versions(session, seen)
        owners = registry.owner_names(session, seen)
        processors = [
            {
                "id": p.name,
                "title": (newest[p.id].definition.get("title") if p.id in newest else None) or p.name,
                "description": newest[p.id].definition.get("description", "") if p.id in newest else "",
                "version": newest[p.id].version if p.id in newest else "",
                "owner": owners.get(p.owner_id or 0) or "the platform",
                "visibility": p.visibility,
            }
            for p in seen
            if p.id in newest
        ]
        recent = [
            {
                "id": run.id,
                "processor": name,
                "version": version,
                "status": run.status,
                "created": run.created_at,
            }
            for run, name, version in runs.list_runs(session, actor, limit=20, offset=0, processor=None)
        ]
    return render_page(
        context,
        "processors_list.html",
        title="Processors",
        user=identity.name,
        admin=identity.admin,
        nav="processors",
        processors=processors,
        recent=recent,
    )


def _render_form(
    request: Request,
    context: ServiceContext,
    identity: Identity,
    name: str,
    version: str | None,
    *,
    values: dict[str, Any] | None = None,
    problems: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    described = run_form(context, identity, name, version_ref(version))
    fields = [field.model_dump() for field in described.fields]
    if values is not None:  # show what was sent, not the defaults
        for field in fields:
            field["value"] = _shown(field, values)
    return render_page(
        context,
        "processor_form.html",
        title=f"Run {described.title}",
        status_code=status_code,
        user=identity.name,
        admin=identity.admin,
        nav="processors",
        processor=described,
        fields=fields,
        action=context.config.prefix + _form_path(name, version),
        problems=problems or {},
        error=error,
        xsrf=page_xsrf(request, context),
    )


def _shown(field: dict[str, Any], sent: dict[str, str]) -> Any:
    """The value a re-shown form keeps in ``field``: what the browser sent."""
    if field["widget"] == "checkbox":
        return field["name"] in sent
    if field["widget"] == "bbox":
        return [sent.get(part["name"], "") for part in field["parts"]]
    return sent.get(field["name"], "")


@page_router.get("/processors/{name}", include_in_schema=False)
def form_page(name: ProcessorName, request: Request, context: Context, identity: OptionalCaller) -> Response:
    """The run form of the processor's latest version."""
    if identity is None or not identity.is_user:
        return _login(context, _form_path(name, None))
    return _render_form(request, context, identity, name, None)


@page_router.get("/processors/{name}/versions/{version}", include_in_schema=False)
def version_form_page(
    name: ProcessorName, version: VersionRef, request: Request, context: Context, identity: OptionalCaller
) -> Response:
    """The run form of one version (its stable URL)."""
    if identity is None or not identity.is_user:
        return _login(context, _form_path(name, version))
    return _render_form(request, context, identity, name, version)


async def _submit(
    request: Request, context: ServiceContext, caller: Identity, name: str, version: str | None
) -> Response:
    sent = await read_form(request)
    described = run_form(context, caller, name, version_ref(version))
    fields = [field.model_dump() for field in described.fields]
    given, problems = form.values_from_form(fields, sent)
    if not problems:
        try:
            run, _, _ = start_run(context, caller, name, RunStart(inputs=given, version=described.version))
        except InputsInvalid as invalid:
            problems = invalid.problems
        else:
            return RedirectResponse(
                f"{context.config.prefix}processors/runs/{run.id}", status_code=status.HTTP_303_SEE_OTHER
            )
    known = {field["name"] for field in fields}
    others = [f"{field}: {message}" for field, message in problems.items() if field not in known]
    return _render_form(
        request,
        context,
        caller,
        name,
        version,
        values=sent,
        problems={field: message for field, message in problems.items() if field in known},
        error="Fix the fields marked below." + (" " + "; ".join(others) if others else ""),
        status_code=status.HTTP_400_BAD_REQUEST,
    )


@page_router.post("/processors/{name}", include_in_schema=False)
async def submit_form(
    name: ProcessorName, request: Request, caller: BrowserFormCaller, context: Context
) -> Response:
    """Start a run of the latest version with the form's values; 303 to the run's page."""
    return await _submit(request, context, caller, name, None)


@page_router.post("/processors/{name}/versions/{version}", include_in_schema=False)
async def submit_version_form(
    name: ProcessorName, version: VersionRef, request: Request, caller: BrowserFormCaller, context: Context
) -> Response:
    """Start a run of that version with the form's values; 303 to the run's page."""
    return await _submit(request, context, caller, name, version)


@page_router.get("/processors/runs/{run_id}", include_in_schema=False)
def run_page(run_id: RunId, request: Request, context: Context, identity: OptionalCaller) -> Response:
    """One run of the signed-in user: progress, log, results and what was published from them (dashboards), and a
    cancel form while it has not ended; reloads itself until the run ends."""
    if identity is None or not identity.is_user:
        return _login(context, f"processors/runs/{quote(run_id, safe='')}")
    with context.session() as session:
        run, name, version = runs.run_of(session, run_id, actor_of(identity))
        # The run's own version (not looked up again: a run stays its invoker's after a withdrawal or unsharing).
        document = session.get(ProcessorVersion, run.version_id).definition
        published = runs.result_links(session, run.id)
        session.expunge(run)
    title = str(document.get("title") or name)
    try:
        log = read_run_file(context, identity.name, run_id, run_task.LOG_FILE).decode("utf-8", "replace")
    except RunFileUnavailable:
        log = ""
    final = run.status in FINAL_RUN_STATES
    folder = f"{run_task.RUNS_FOLDER}/{run.id}"
    lab = f"/user/{quote(identity.name, safe='')}/lab/tree/{folder}"
    api = f"{context.config.prefix}api/v1/runs/{run.id}"
    return render_page(
        context,
        "processor_run.html",
        title=f"Run of {title}",
        user=identity.name,
        admin=identity.admin,
        nav="processors",
        run=run,
        processor={"id": name, "version": version, "title": title},
        final=final,
        refresh_seconds=None if final else REFRESH_SECONDS,
        log=log[-LOG_TAIL_CHARS:],
        percent=int(100 * run.cells_done / run.cells_total) if run.cells_total else (100 if final else 0),
        notebook_download=f"{api}/notebook",
        notebook_lab=f"{lab}/{run_task.OUTPUT_NOTEBOOK}",
        outputs=[
            {
                **output,
                "download": f"{api}/outputs/{quote(output['name'], safe='')}",
                "lab": f"{lab}/{output['path']}",
            }
            for output in form.file_outputs(document)
        ],  # fmt: skip
        form_url=context.config.prefix + _form_path(name, version),
        published=published,
        cancel_url=None if final else f"{context.config.prefix}processors/runs/{run.id}/cancel",
        xsrf=page_xsrf(request, context),
    )


@page_router.post("/processors/runs/{run_id}/cancel", include_in_schema=False)
def cancel_run_page(run_id: RunId, caller: BrowserFormCaller, context: Context) -> Response:
    """Cancel the caller's run (the API's cancel: it stops the kernel); 303 to the run's page."""
    with suppress(RunNotCancellable):  # it ended before the click: its page says how
        cancel(context, caller, run_id)
    return RedirectResponse(
        f"{context.config.prefix}processors/runs/{run_id}", status_code=status.HTTP_303_SEE_OTHER
    )
