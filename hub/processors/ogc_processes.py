"""OGC API - Processes - Part 1: Core 1.0, the registry half, under ``<service prefix>ogcapi/``.

* ``GET /`` — the landing page (links to the API definition, conformance, processes, jobs);
* ``GET /conformance`` — core, ogc-process-description, json, html, oas30, job-list, dismiss;
* ``GET /processes`` — the processes the caller may see (``access.may_see``), paged with ``limit`` and ``offset``
  (``next``/``prev`` links);
* ``GET /processes/{processId}`` — the process description generated from the newest version's definition.

Executing, jobs and dismissing are the runs' (``ogc_jobs.py``), mounted under the same prefix.

Rules this module guarantees:

* **Generated, never stored**: a description is computed from the definition (``process_description``): each input
  with its JSON Schema (``schema``: type, bounds, enum, default, ``format`` date/date-time, the OGC bounding-box
  object for ``bbox``) and ``minOccurs`` 0 when it is optional, each output with its schema (files as binary content
  of their media type), ``jobControlOptions`` sync-execute and async-execute, ``outputTransmission`` value and
  reference, and the execute link. Responses validate against the OGC 1.0 schemas (tests).
* **Only what the caller may see**: the same rule as the REST API. Landing page and conformance need no credentials;
  processes need a token (an unseen process is answered 404 like an unknown one).
* **The standard's exceptions**: every refusal here is ``{"type", "title", "status", "detail"}`` (RFC 7807 as the
  standard uses it), e.g. ``.../ogcapi-processes-1/1.0/no-such-process`` for 404.
* **JSON or HTML**: ``?f=json`` / ``?f=html``, else the ``Accept`` header (HTML only when asked for and preferred);
  the HTML is escaped text, no scripts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from polartep_hub.processors import registry
from polartep_hub.processors.api import actor_of
from polartep_hub.processors.definition import is_required
from polartep_hub.processors.models import Processor, ProcessorVersion
from polartep_hub.service.web import access
from polartep_hub.service.web.access import Context
from polartep_hub.service.web.pages import render_page

router = APIRouter(tags=["OGC API - Processes"])

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
]
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"
REL_PROCESSES = "http://www.opengis.net/def/rel/ogc/1.0/processes"
REL_JOBS = "http://www.opengis.net/def/rel/ogc/1.0/job-list"
REL_CONFORMANCE = "http://www.opengis.net/def/rel/ogc/1.0/conformance"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

# The keys of a schema object that the OGC 1.0 schema (an OpenAPI 3.0 schema object) allows.
_SCHEMA_KEYS = frozenset(
    "title multipleOf maximum exclusiveMaximum minimum exclusiveMinimum maxLength minLength pattern maxItems minItems "
    "uniqueItems maxProperties minProperties required enum type not allOf oneOf anyOf items properties "
    "additionalProperties description format default nullable readOnly writeOnly example deprecated "
    "contentMediaType contentEncoding contentSchema".split()
)
_SCHEMA_TYPES = frozenset({"array", "boolean", "integer", "number", "object", "string"})

_ERROR_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    503: "Service unavailable",
}
_EXCEPTION_TYPES = {
    401: "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/unauthorized",
    403: "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/forbidden",
    503: "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/unavailable",
}
_OGC_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }
    for code, text in (
        (401, "no or an invalid token (the standard's exception body: type, title, status, detail)"),
        (503, "credentials cannot be checked right now"),
    )
}


def exception(status: int, detail: str, kind: str | None = None) -> JSONResponse:
    """The standard's exception answer (``type``, ``title``, ``status``, ``detail``)."""
    body = {
        "type": EXCEPTIONS + kind if kind else _EXCEPTION_TYPES.get(status, "about:blank"),
        "title": _ERROR_TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    # application/json, as the standard's own OpenAPI document declares its exception answers.
    return JSONResponse(body, status_code=status)


# --- the description generated from a definition ---------------------------------------------------------------


def _clean_schema(schema: Any) -> dict[str, Any]:
    """A user-written JSON Schema reduced to what an OGC 1.0 (OpenAPI 3.0) schema object may hold."""
    if not isinstance(schema, Mapping):
        return {}
    clean: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "type" and value not in _SCHEMA_TYPES:
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            continue
        if key in ("items", "not", "additionalProperties") and isinstance(value, Mapping):
            value = _clean_schema(value)
        elif key == "properties" and isinstance(value, Mapping):
            value = {str(k): _clean_schema(v) for k, v in value.items()}
        elif key in ("allOf", "oneOf", "anyOf") and isinstance(value, list):
            value = [_clean_schema(v) for v in value]
        clean[key] = value
    return clean


def _value_schema(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one value of an input (without its default)."""
    kind = spec.get("type")
    schema: dict[str, Any]
    if kind in ("string", "number", "integer"):
        schema = {"type": kind}
        for key in ("minimum", "maximum", "minLength", "maxLength", "enum"):
            if key in spec:
                schema[key] = spec[key]
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "date":
        schema = {"type": "string", "format": "date"}
    elif kind == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif kind == "bbox":
        # The standard's bounding-box input (an object with "bbox" and "crs"), in CRS84 degrees.
        schema = {
            "type": "object",
            "required": ["bbox"],
            "properties": {
                "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
                "crs": {"type": "string", "format": "uri", "default": CRS84, "enum": [CRS84]},
            },
            "format": "ogc-bbox",
        }
    elif kind == "path":
        schema = {
            "type": "string",
            "description": "a relative file or dataset path (no '..', no leading '/')",
        }
    elif kind == "stac-item":
        schema = {"type": "string", "description": "a STAC item: its URL or 'collection/item'"}
    elif kind == "stac-collection":
        schema = {"type": "string", "description": "a STAC collection: its URL or id"}
    elif kind == "array":
        schema = {"type": "array", "items": _value_schema(spec.get("items") or {})}
        for key in ("minItems", "maxItems"):
            if key in spec:
                schema[key] = spec[key]
    else:
        schema = {}
    return schema


def _input_description(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    schema = _value_schema(spec)
    if "default" in spec:
        default = spec["default"]
        schema["default"] = {"bbox": default, "crs": CRS84} if spec.get("type") == "bbox" else default
    description: dict[str, Any] = {"title": spec.get("title", name)}
    if spec.get("description"):
        description["description"] = spec["description"]
    description.update({"minOccurs": 1 if is_required(spec) else 0, "maxOccurs": 1, "schema": schema})
    return description


def _output_description(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    if spec.get("type") == "file":
        schema: dict[str, Any] = {
            "type": "string",
            "contentEncoding": "binary",
            "contentMediaType": spec.get("mediaType", "application/octet-stream"),
        }
    else:
        schema = _clean_schema(spec.get("schema"))
    description: dict[str, Any] = {"title": spec.get("title", name)}
    if spec.get("description"):
        description["description"] = spec["description"]
    description["schema"] = schema
    return description


def _base(request: Request) -> str:
    """The OGC API's root URL as the client reached it (through the proxy: the service prefix is in the path)."""
    prefix = request.app.state.context.config.prefix.rstrip("/")
    return str(request.base_url).rstrip("/") + f"{prefix}/ogcapi"


def process_summary(request: Request, processor: Processor, version: ProcessorVersion) -> dict[str, Any]:
    """The ``processSummary`` of ``processor`` at ``version``."""
    document = version.definition
    url = f"{_base(request)}/processes/{processor.name}"
    summary: dict[str, Any] = {
        "id": processor.name,
        "title": document.get("title", processor.name),
    }
    if document.get("description"):
        summary["description"] = document["description"]
    if document.get("keywords"):
        summary["keywords"] = list(document["keywords"])
    summary.update(
        {
            "version": version.version,
            "jobControlOptions": ["sync-execute", "async-execute"],
            "outputTransmission": ["value", "reference"],
            "links": [
                {"href": url, "rel": "self", "type": "application/json", "title": "process description"},
                {"href": f"{url}?f=html", "rel": "alternate", "type": "text/html", "title": "as HTML"},
                {
                    "href": f"{url}/execution",
                    "rel": REL_EXECUTE,
                    "type": "application/json",
                    "title": "execute",
                },
            ],
        }
    )
    return summary


def process_description(request: Request, processor: Processor, version: ProcessorVersion) -> dict[str, Any]:
    """The OGC process description of ``processor`` at ``version``, generated from its definition."""
    document = version.definition
    description = process_summary(request, processor, version)
    description["inputs"] = {
        name: _input_description(name, spec) for name, spec in (document.get("inputs") or {}).items()
    }
    description["outputs"] = {
        name: _output_description(name, spec) for name, spec in (document.get("outputs") or {}).items()
    }
    return description


# --- JSON or HTML -------------------------------------------------------------------------------------------------

Format = Annotated[str | None, Query(pattern="^(json|html)$", description="json (default) or html")]


def _wants_html(request: Request, f: str | None) -> bool:
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "")
    # HTML only when the client names it before any JSON (browsers do; OGC clients ask for JSON or */*).
    html_at, json_at = accept.find("text/html"), accept.find("json")
    return html_at != -1 and (json_at == -1 or html_at < json_at)


def _answer(request: Request, f: str | None, title: str, body: dict[str, Any]) -> Response:
    if _wants_html(request, f):
        return render_page(request.app.state.context, "ogc_processes.html", title=title, document=body)
    return JSONResponse(body)


async def _actor(request: Request, context: Any) -> Any:
    """The caller as the registry sees it; the standard's exception when there is none."""
    try:
        identity = access.require_service_access(
            access.require_identity(await access.optional_identity(request, context)), context
        )
    except HTTPException as error:
        raise _OgcRefusal(error.status_code, str(error.detail)) from None
    return actor_of(identity)


class _OgcRefusal(Exception):
    def __init__(self, status: int, detail: str, kind: str | None = None) -> None:
        self.response = exception(status, detail, kind)


# --- routes -------------------------------------------------------------------------------------------------------

_JSON_OR_HTML = {"content": {"application/json": {}, "text/html": {}}}


@router.get(
    "/", response_class=Response, responses={200: {**_JSON_OR_HTML, "description": "the landing page"}}
)
def landing_page(request: Request, f: Format = None) -> Response:
    """The landing page of the OGC API - Processes."""
    base = _base(request)
    prefix = request.app.state.context.config.prefix.rstrip("/")
    links = [
        {"href": f"{base}/", "rel": "self", "type": "application/json", "title": "this document"},
        {
            "href": f"{base}/?f=html",
            "rel": "alternate",
            "type": "text/html",
            "title": "this document as HTML",
        },
        {
            "href": str(request.base_url).rstrip("/") + f"{prefix}/api/v1/openapi.json",
            "rel": "service-desc",
            "type": "application/vnd.oai.openapi+json;version=3.0",
            "title": "the API definition",
        },
        {
            "href": f"{base}/conformance",
            "rel": REL_CONFORMANCE,
            "type": "application/json",
            "title": "conformance",
        },
        {"href": f"{base}/processes", "rel": REL_PROCESSES, "type": "application/json", "title": "processes"},
        {"href": f"{base}/jobs", "rel": REL_JOBS, "type": "application/json", "title": "jobs"},
    ]
    body = {
        "title": "Polar TEP processes",
        "description": "Published notebooks of the Polar TEP platform as OGC API - Processes 1.0 processes.",
        "links": links,
    }
    return _answer(request, f, body["title"], body)


@router.get(
    "/conformance",
    response_class=Response,
    responses={200: {**_JSON_OR_HTML, "description": "the conformance classes"}},
)
def conformance(request: Request, f: Format = None) -> Response:
    """The conformance classes this API implements."""
    return _answer(request, f, "Conformance", {"conformsTo": CONFORMANCE})


@router.get(
    "/processes",
    response_class=Response,
    responses={200: {**_JSON_OR_HTML, "description": "the processes the caller may see"}, **_OGC_ERRORS},
)
async def processes(
    request: Request,
    context: Context,
    f: Format = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """The processes the caller may see (their own, public ones, those shared with their projects)."""
    try:
        actor = await _actor(request, context)
    except _OgcRefusal as refusal:
        return refusal.response

    def read() -> tuple[int, list[dict[str, Any]]]:
        with context.session() as session:
            seen = registry.visible(session, actor)
            page = seen[offset : offset + limit]
            newest = registry.newest_versions(session, page)
            summaries = [process_summary(request, p, newest[p.id]) for p in page if p.id in newest]
            return len(seen), summaries

    # The database is read in the thread pool, never on the event loop (the identity check above is async).
    total, summaries = await run_in_threadpool(read)
    base = f"{_base(request)}/processes"

    def url(**params: Any) -> str:
        return f"{base}?{urlencode(params)}"

    links = [
        {
            "href": url(limit=limit, offset=offset),
            "rel": "self",
            "type": "application/json",
            "title": "this page",
        },
        {
            "href": url(limit=limit, offset=offset, f="html"),
            "rel": "alternate",
            "type": "text/html",
            "title": "this page as HTML",
        },
    ]
    if offset + limit < total:
        links.append(
            {
                "href": url(limit=limit, offset=offset + limit),
                "rel": "next",
                "type": "application/json",
                "title": "next page",
            }
        )
    if offset > 0:
        links.append(
            {
                "href": url(limit=limit, offset=max(0, offset - limit)),
                "rel": "prev",
                "type": "application/json",
                "title": "previous page",
            }
        )
    return _answer(request, f, "Processes", {"processes": summaries, "links": links})


@router.get(
    "/processes/{processId}",
    response_class=Response,
    responses={
        200: {**_JSON_OR_HTML, "description": "the process description"},
        404: {"description": "no such process (the standard's no-such-process exception)"},
        **_OGC_ERRORS,
    },
)
async def process(
    request: Request,
    context: Context,
    pid: Annotated[str, Path(alias="processId", max_length=64, description="a process (processor) id")],
    f: Format = None,
) -> Response:
    """The description of one process, generated from its newest definition."""
    try:
        actor = await _actor(request, context)
    except _OgcRefusal as refusal:
        return refusal.response

    def read() -> dict[str, Any] | JSONResponse:
        with context.session() as session:
            try:
                processor = registry.find(session, pid, actor)
            except registry.ProcessorNotFound:
                return exception(
                    404, f"no process {pid[:64]!r} (or it is not shared with you)", "no-such-process"
                )
            newest = registry.latest_version(session, processor)
            if newest is None:
                return exception(404, f"process {pid!r} has no published version", "no-such-process")
            return process_description(request, processor, newest)

    body = await run_in_threadpool(read)
    if isinstance(body, JSONResponse):
        return body
    return _answer(request, f, body["title"], body)
