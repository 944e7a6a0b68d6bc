"""HTTP API of the processor registry, under ``<prefix>api/v1``.

* ``GET /processors/schema`` — the definition's JSON Schema (``schema/processor.schema.json``), as the service uses it;
* ``POST /processors/draft`` ``{"notebook": <base64>, "filename"}`` — a draft definition inferred from the notebook;
* ``POST /processors/validate`` ``{"definition", "notebook"?}`` — ``{"valid", "problems"}`` without storing anything
  (the extension's dialog validates live with it);
* ``POST /processors`` ``{"definition", "notebook": <base64>}`` — publish: a new processor (201) or its next version
  (201); 409 for a version not greater than the newest or an id that is another account's, 422 naming each field;
* ``GET /processors`` — the processors the caller may see; ``GET /processors/{id}`` — one, with its newest definition;
* ``GET /processors/{id}/versions``, ``GET /processors/{id}/versions/{ref}`` (sequence, version or ``latest``);
  ``GET /processors/{id}/versions/{ref}/notebook`` — the published notebook (owner and administrators);
* ``PUT /processors/{id}/sharing`` ``{"visibility", "projects"}`` and ``GET /processors/{id}/usage`` — owner and
  administrators.

Rules this module guarantees:

* JSON bodies with the notebook base64-encoded (one request, one transaction; no multipart parser state): the
  routes that carry a notebook accept bodies up to ``NOTEBOOK_BODY_BYTES`` (``LARGE_BODY_PATHS``, applied by the
  service's body limit), every other route keeps the service's default limit.
* Statuses come from the one table (``service/web/errors.py``); nothing is stored for a refused request.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from polartep_hub.accounts.store import get_or_create_account
from polartep_hub.processors import access, definition, registry
from polartep_hub.processors.models import Processor, ProcessorVersion
from polartep_hub.processors.notebook_store import NotebookStore
from polartep_hub.projects.store import Actor
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import Context, ServiceCaller, UserCaller
from polartep_hub.service.web.identity import Identity
from polartep_hub.usage.storage import check_account_write

router = APIRouter(tags=["processors"])

# Base64 makes 4 bytes of 3; the definition and the JSON around it get a generous 1 MiB.
NOTEBOOK_BASE64_CHARS = (registry.MAX_NOTEBOOK_BYTES + 2) // 3 * 4
NOTEBOOK_BODY_BYTES = NOTEBOOK_BASE64_CHARS + 1024 * 1024
# The routes (under <prefix>api/v1) whose bodies carry a notebook, and so may be larger than the service's default.
LARGE_BODY_PATHS = ("/processors", "/processors/draft", "/processors/validate")

_ID_SCHEMA = {"pattern": "^[a-z][a-z0-9-]{1,62}$"}
ProcessorId = Annotated[
    str, Path(min_length=2, max_length=63, description="a processor id", json_schema_extra=_ID_SCHEMA)
]
VersionRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="a version: its sequence number (1, 2, ...), its version string (1.2.0) or 'latest'",
    ),
]

_UNKNOWN = {404: {"description": "no such processor or version (or it is not shared with you)"}}
_NOT_OWNER = {403: {"description": "only the processor's owner and administrators may do this"}}
_INVALID = {
    422: {"description": "the definition or the notebook breaks a rule; the detail names each field"},
    413: {"description": "the notebook is over the size limit"},
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


Notebook64 = Annotated[
    str,
    Field(
        min_length=1,
        max_length=NOTEBOOK_BASE64_CHARS,
        description="the .ipynb file, base64-encoded",
        json_schema_extra={"contentEncoding": "base64"},
    ),
]


class PublishIn(_Body):
    definition: dict[str, Any] = Field(
        description="the definition (processor.json); see GET processors/schema"
    )
    notebook: Notebook64


class DraftIn(_Body):
    notebook: Notebook64
    filename: str = Field(default="notebook.ipynb", min_length=1, max_length=255)


class ValidateIn(_Body):
    definition: dict[str, Any]
    notebook: Notebook64 | None = Field(
        default=None, description="with the notebook, input names are checked against its parameters cell"
    )


class ValidateOut(BaseModel):
    valid: bool
    problems: list[str] = Field(description="each '<field path>: <rule>'; empty when valid")


class SharingIn(_Body):
    visibility: Literal["private", "projects", "public"]
    projects: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=100)


class ProcessorSummary(BaseModel):
    id: str
    title: str
    description: str
    keywords: list[str]
    version: str = Field(description="the newest version")
    sequence: int = Field(description="the newest version's sequence number")
    visibility: str
    owner: str | None = Field(
        description="the owner's account name; None for withdrawn and built-in processors"
    )
    updated_at: datetime
    withdrawn: bool


class ProcessorList(BaseModel):
    processors: list[ProcessorSummary]


class ProcessorOut(ProcessorSummary):
    definition: dict[str, Any] = Field(description="the newest version's definition")
    versions: int
    projects: list[str] = Field(
        description="the projects it is shared with (shown to its owner and administrators)"
    )
    may_change: bool
    may_run: bool


class VersionSummary(BaseModel):
    sequence: int
    version: str
    published_at: datetime
    notebook_sha256: str


class VersionList(BaseModel):
    versions: list[VersionSummary]


class VersionOut(VersionSummary):
    id: str
    definition: dict[str, Any]


class PublishedOut(BaseModel):
    id: str
    sequence: int
    version: str
    created: bool = Field(description="true for the first version of a new processor")


class VersionUsage(BaseModel):
    sequence: int
    runs: int
    users: int


class UsageOut(BaseModel):
    runs: int = Field(description="runs of every version, by anyone")
    users: int = Field(description="distinct users who ran it")
    by_state: dict[str, int]
    by_version: list[VersionUsage]


def actor_of(caller: Identity) -> Actor:
    """The registry's view of a caller: the hub acts as an administrator without an account."""
    if caller.is_hub:
        return Actor(name=None, admin=True)
    return Actor(name=caller.name, admin=caller.is_user and caller.admin)


def notebook_store(context: ServiceContext) -> NotebookStore:
    """The published notebooks' store (``<processors_dir>/notebooks``); 503 when the service has no folder."""
    folder = context.config.processors_dir
    if folder is None:
        raise registry.PublishingUnavailable(
            "this service has no processors folder (POLARTEP_PROCESSORS_DIR); ask the operator"
        )
    return NotebookStore(folder / "notebooks")


def _decode(notebook: str) -> bytes:
    try:
        return base64.b64decode(notebook, validate=True)
    except (binascii.Error, ValueError):
        raise definition.NotebookInvalid("notebook: must be the .ipynb file base64-encoded") from None


def summary(processor: Processor, newest: ProcessorVersion | None, owner: str | None) -> dict[str, Any]:
    """The fields of ``ProcessorSummary`` for ``processor`` and its newest version."""
    document = newest.definition if newest is not None else {}
    return {
        "id": processor.name,
        "title": document.get("title", processor.name),
        "description": document.get("description", ""),
        "keywords": document.get("keywords", []),
        "version": newest.version if newest is not None else "",
        "sequence": newest.sequence if newest is not None else 0,
        "visibility": processor.visibility,
        "owner": owner,
        "updated_at": processor.updated_at,
        "withdrawn": processor.withdrawn_at is not None,
    }


def _processor_out(session: Any, processor: Processor, actor: Actor) -> ProcessorOut:
    newest = registry.latest_version(session, processor)
    changeable = access.may_change(session, processor, actor)
    return ProcessorOut(
        **summary(processor, newest, registry.owner_name(session, processor)),
        definition=newest.definition if newest is not None else {},
        versions=newest.sequence if newest is not None else 0,
        projects=registry.shared_projects(session, processor) if changeable else [],
        may_change=changeable,
        may_run=access.may_run(session, processor, actor),
    )


@router.get("/processors/schema", response_model=dict[str, Any])
def definition_schema(caller: ServiceCaller) -> dict[str, Any]:
    """The JSON Schema of a processor definition (``processor.json``), exactly as the service validates with it."""
    return definition.schema()


@router.post("/processors/draft", response_model=dict[str, Any], responses=_INVALID)
def draft(body: DraftIn, caller: ServiceCaller) -> dict[str, Any]:
    """A draft definition inferred from the notebook's ``parameters`` cell (names, types, defaults, comments)."""
    notebook = _decode(body.notebook)
    registry.check_notebook(notebook)
    return definition.draft_from_notebook(notebook, body.filename)


@router.post("/processors/validate", response_model=ValidateOut, responses=_INVALID)
def validate(body: ValidateIn, caller: ServiceCaller, context: Context) -> ValidateOut:
    """Check a definition (and, given the notebook, its input names) as a publish would; stores nothing."""
    declared = registry.check_notebook(_decode(body.notebook)) if body.notebook is not None else None
    try:
        definition.validate_definition(
            body.definition, profiles=list(context.catalogue.profiles), declared_parameters=declared
        )
    except definition.DefinitionInvalid as error:
        return ValidateOut(valid=False, problems=error.problems)
    return ValidateOut(valid=True, problems=[])


@router.post(
    "/processors",
    response_model=PublishedOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_INVALID,
        403: {"description": "the processor is another account's (you may see it but not publish to it)"},
        409: {
            "description": "the version is not greater than the newest (versions are immutable), or the id is taken"
        },
        413: {"description": "the notebook is too large, or the publisher's storage is over quota"},
        503: {"description": "publishing is not possible right now"},
    },
)
def publish(body: PublishIn, caller: UserCaller, context: Context) -> PublishedOut:
    """Publish a notebook with its definition: a new processor, or the next version of one you own."""
    notebook = _decode(body.notebook)
    store = notebook_store(context)
    with context.session() as session:
        get_or_create_account(session, caller.name, default_plan=context.config.default_plan)
        # Published on the publisher's behalf: refused (413) when their home's class is full (usage/storage.py).
        check_account_write(
            session, context.catalogue, caller.name, context.config.home_storage_class, len(notebook)
        )
    published = registry.publish(
        context.sessions,
        store,
        actor=actor_of(caller),
        document=body.definition,
        notebook=notebook,
        profiles=context.catalogue.profiles,
        storage_class=context.config.home_storage_class,
    )
    return PublishedOut(
        id=published.name, sequence=published.sequence, version=published.version, created=published.created
    )


@router.get("/processors", response_model=ProcessorList)
def list_processors(caller: ServiceCaller, context: Context) -> ProcessorList:
    """The processors the caller may see: their own, public ones and those shared with their projects."""
    actor = actor_of(caller)
    with context.session() as session:
        seen = registry.visible(session, actor)
        newest = registry.newest_versions(session, seen)
        owners = registry.owner_names(session, seen)
        return ProcessorList(
            processors=[
                ProcessorSummary(**summary(p, newest.get(p.id), owners.get(p.owner_id or 0))) for p in seen
            ]
        )


@router.get("/processors/{pid}", response_model=ProcessorOut, responses=_UNKNOWN)
def get_processor(pid: ProcessorId, caller: ServiceCaller, context: Context) -> ProcessorOut:
    """One processor with its newest definition."""
    actor = actor_of(caller)
    with context.session() as session:
        return _processor_out(session, registry.find(session, pid, actor), actor)


@router.get("/processors/{pid}/versions", response_model=VersionList, responses=_UNKNOWN)
def list_versions(pid: ProcessorId, caller: ServiceCaller, context: Context) -> VersionList:
    """Every published version, oldest first; each stays runnable."""
    with context.session() as session:
        processor = registry.find(session, pid, actor_of(caller))
        return VersionList(
            versions=[
                VersionSummary(
                    sequence=v.sequence,
                    version=v.version,
                    published_at=v.published_at,
                    notebook_sha256=v.notebook_sha256,
                )
                for v in registry.versions(session, processor)
            ]
        )


@router.get("/processors/{pid}/versions/{ref}", response_model=VersionOut, responses=_UNKNOWN)
def get_version(pid: ProcessorId, ref: VersionRef, caller: ServiceCaller, context: Context) -> VersionOut:
    """One version with its definition."""
    with context.session() as session:
        processor = registry.find(session, pid, actor_of(caller))
        v = registry.find_version(session, processor, ref)
        return VersionOut(
            id=processor.name,
            sequence=v.sequence,
            version=v.version,
            published_at=v.published_at,
            notebook_sha256=v.notebook_sha256,
            definition=v.definition,
        )


@router.get(
    "/processors/{pid}/versions/{ref}/notebook",
    response_class=Response,
    responses={
        **_UNKNOWN,
        **_NOT_OWNER,
        200: {"content": {"application/x-ipynb+json": {}}, "description": "the published notebook"},
        503: {"description": "the stored notebook cannot be read"},
    },
)
def get_notebook(pid: ProcessorId, ref: VersionRef, caller: ServiceCaller, context: Context) -> Response:
    """The notebook exactly as published (owner and administrators)."""
    with context.session() as session:
        processor = registry.find_changeable(session, pid, actor_of(caller))
        v = registry.find_version(session, processor, ref)
        sha256 = v.notebook_sha256
    try:
        content = notebook_store(context).read(sha256)
    except (LookupError, RuntimeError):
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="the stored notebook cannot be read"
        ) from None
    return Response(
        content,
        media_type="application/x-ipynb+json",
        headers={"Content-Disposition": f'attachment; filename="{pid}-{v.version}.ipynb"'},
    )


@router.put(
    "/processors/{pid}/sharing",
    response_model=ProcessorOut,
    responses={
        **_UNKNOWN,
        **_NOT_OWNER,
        422: {"description": "a project is unknown or not yours, or the visibility and projects disagree"},
    },
)
def change_sharing(
    pid: ProcessorId, body: SharingIn, caller: ServiceCaller, context: Context
) -> ProcessorOut:
    """Who may see and run it: ``private``, ``projects`` (the projects named) or ``public``."""
    actor = actor_of(caller)
    with context.session() as session:
        processor = registry.change_sharing(
            session, pid, actor, visibility=body.visibility, projects=body.projects
        )
        return _processor_out(session, processor, actor)


@router.get("/processors/{pid}/usage", response_model=UsageOut, responses={**_UNKNOWN, **_NOT_OWNER})
def processor_usage(pid: ProcessorId, caller: ServiceCaller, context: Context) -> UsageOut:
    """How often and by how many users it ran (owner and administrators); never others' inputs or results."""
    with context.session() as session:
        return UsageOut(**registry.usage(session, pid, actor_of(caller)))
