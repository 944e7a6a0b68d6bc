"""HTTP API of datasets, under ``<prefix>api/v1``.

* ``POST /datasets`` ``{"project", "name", "storage_class", "title"?, "description"?}`` — members of the project;
* ``GET /datasets`` — the datasets the caller may read, each with ``access`` (``rw`` or ``ro``);
* ``GET /datasets/{project}/{name}`` — who may read it; with its grants and its size in bytes;
* ``DELETE /datasets/{project}/{name}`` — owners of the project and administrators;
* ``PUT /datasets/{project}/{name}/grants/{grantee}`` (read access for every member of project ``grantee``),
  ``DELETE`` the same to revoke — owners of the dataset's project and administrators;
* ``PUT /datasets/{project}/{name}/collection`` (STAC collection metadata: title, description, license, keywords,
  providers, doi, extent), ``POST /datasets/{project}/{name}/items`` (a STAC item or a FeatureCollection of them),
  ``DELETE /datasets/{project}/{name}/items/{item}`` — members of the project (``stac.py`` validates);
* creating a dataset and writing its collection or items answer 413 when the project's paying owner is over the
  storage quota of the dataset's class (``metering.py``); deleting stays allowed, it frees space;
* ``GET /users/{name}/dataset-mounts`` — the hub only: what the user's next server may mount, and how.
* Datasets of the object class on an S3-compatible endpoint (``object_store.py``): ``GET
  /datasets/{project}/{name}/objects?prefix=&after=&limit=`` lists them (readers); ``POST
  /datasets/{project}/{name}/object-urls`` ``{"key", "method": "GET"|"PUT", "bytes"?}`` answers a presigned URL for
  one object (GET: readers; PUT: members, signed for exactly ``bytes``); ``DELETE
  /datasets/{project}/{name}/objects?key=`` deletes one (members). The key travels in the body or the query, never
  in the path, so no proxy in between normalises ``..`` away before the service sees it.

Rules this module guarantees:

* A dataset the caller may not read does not exist for them: 404, the same answer as for a name nobody uses.
* Bad names (anything but ``store.DATASET_NAME_RULE``: ``..``, ``/``, ``\\``, ``%2e%2e`` once decoded) and bad fields
  answer 400 naming the rule; nothing is stored for a refused request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from polartep_hub.accounts.api.schemas import AccountNamePath
from polartep_hub.accounts.store import check_account_name
from polartep_hub.data import metering, stac, storage
from polartep_hub.data import store as datasets
from polartep_hub.data.object_store import MAX_PUT_BYTES, OBJECT_KEY_RULE
from polartep_hub.data.storage import StorageRoots
from polartep_hub.projects import store as projects
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import Context, HubCaller, ServiceCaller
from polartep_hub.service.web.identity import Identity

router = APIRouter()

_DATASET_NAME_SCHEMA = {"pattern": f"^{datasets.DATASET_NAME_PATTERN}$"}
_PROJECT_NAME_SCHEMA = {"pattern": f"^{projects.PROJECT_NAME_PATTERN}$"}
ProjectPath = Annotated[
    str, Path(max_length=64, description="the owning project", json_schema_extra=_PROJECT_NAME_SCHEMA)
]
DatasetPath = Annotated[
    str, Path(max_length=64, description="the dataset's name", json_schema_extra=_DATASET_NAME_SCHEMA)
]
_NOT_SEEN = {
    400: {"description": "a name breaks its rule"},
    404: {"description": "no such dataset, or one the caller may not see"},
}
_OVER_QUOTA = {413: {"description": "the dataset's storage class is over its paying owner's quota"}}
_OWNERS = {403: {"description": "the caller sees the dataset but is not an owner of its project"}}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetCreate(_Body):
    project: Annotated[str, Field(max_length=256, json_schema_extra=_PROJECT_NAME_SCHEMA)]
    name: Annotated[
        str,
        Field(max_length=256, description=datasets.DATASET_NAME_RULE, json_schema_extra=_DATASET_NAME_SCHEMA),
    ]
    storage_class: Annotated[str, Field(max_length=64, description="a storage class of the catalogue")]
    title: Annotated[str, Field(max_length=1000)] | None = None
    description: Annotated[str, Field(max_length=8000)] = ""


class DatasetOut(BaseModel):
    project: str = Field(description="the project that owns the dataset")
    name: str
    title: str
    description: str
    storage_class: str
    access: Literal["rw", "ro"] = Field(description="the caller's access: read-write (members) or read-only")
    mount_path: str | None = Field(
        description="where the dataset appears in the home of a server that may use it; null for datasets in the "
        "object store, reached through presigned URLs (objects, object-urls)"
    )
    in_object_store: bool = Field(
        default=False, description="its files are objects in the S3-compatible store, not a mounted folder"
    )
    granted_to: list[str] = Field(description="projects with read access (shown to the owning project only)")
    created_at: datetime
    bytes: int | None = Field(default=None, description="bytes held (single-dataset answers only)")
    folder: str | None = Field(default=None, description="the hub only: the dataset's folder on the host")


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


class MountOut(BaseModel):
    project: str
    name: str
    mode: Literal["rw", "ro"]
    path: str = Field(description="the dataset's folder on the host")
    gid: int | None = Field(description="the system group that opens it (local mode with system users)")
    reason: str | None = Field(
        default=None,
        description="why a dataset of the user's own project is read-only (its storage is over quota)",
    )


class MountList(BaseModel):
    mounts: list[MountOut]
    roots: list[str] = Field(
        description="every storage class's root: links into them that are not mounts are stale"
    )


def _actor(caller: Identity) -> projects.Actor:
    if caller.is_hub:
        return projects.Actor(name=None, admin=True)
    return projects.Actor(name=caller.name, admin=caller.is_user and caller.admin)


def _roots(context: ServiceContext) -> StorageRoots:
    if context.storage_roots is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="datasets are not configured here")
    return context.storage_roots


def _check_write(session, context: ServiceContext, view: datasets.DatasetView) -> None:
    """413 when the dataset's paying owner is over the quota of its class (``metering.py``): a dataset over quota
    takes no write through the API. Read-only callers are refused first (403) by the write itself."""
    if view.access == "rw":
        metering.check_dataset_write(session, context.catalogue, view.dataset)


def _out(
    view: datasets.DatasetView, roots: StorageRoots, size: int | None = None, folder: str | None = None
) -> DatasetOut:
    dataset = view.dataset
    objects = roots.in_object_store(dataset.storage_class)
    return DatasetOut(
        project=view.project,
        name=dataset.name,
        title=dataset.title,
        description=dataset.description,
        storage_class=dataset.storage_class,
        access=view.access,  # type: ignore[arg-type]
        mount_path=None if objects else f"datasets/{view.project}/{dataset.name}",
        in_object_store=objects,
        granted_to=sorted(g.project.name for g in dataset.grants) if view.access == "rw" else [],
        created_at=dataset.created_at,
        bytes=size,
        folder=folder,
    )


@router.post(
    "/datasets",
    response_model=DatasetOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "a name or field breaks its rule, or the storage class is unknown"},
        403: {"description": "the caller is not a member of the project"},
        404: {"description": "no such project"},
        409: {"description": "the project already has a dataset of that name"},
        413: {"description": "the project's paying owner is over the storage quota of the class"},
        503: {"description": "the storage class cannot take new datasets right now"},
    },
)
def create_dataset(body: DatasetCreate, caller: ServiceCaller, context: Context) -> DatasetOut:
    """Create a dataset of a project (its members), with an empty folder in the storage class."""
    with context.session() as session:
        view = datasets.create_dataset(
            session,
            _roots(context),
            project=body.project,
            name=body.name,
            storage_class=body.storage_class,
            actor=_actor(caller),
            title=body.title,
            description=body.description,
            catalogue=context.catalogue,
        )
        return _out(view, _roots(context))


@router.get("/datasets", response_model=DatasetList)
def list_datasets(caller: ServiceCaller, context: Context) -> DatasetList:
    """The datasets the caller may read: their projects' (rw) and those granted to their projects (ro)."""
    with context.session() as session:
        roots = _roots(context)
        return DatasetList(
            datasets=[_out(v, roots) for v in datasets.visible_datasets(session, _actor(caller))]
        )


@router.get("/datasets/{project}/{name}", response_model=DatasetOut, responses=_NOT_SEEN)
def get_dataset(
    project: ProjectPath, name: DatasetPath, caller: ServiceCaller, context: Context
) -> DatasetOut:
    """One dataset, with its size; 404 for a dataset the caller may not read."""
    roots = _roots(context)
    with context.session() as session:
        view = datasets.load_dataset(session, project, name, _actor(caller))
        dataset = view.dataset
        try:
            size = storage.dataset_bytes(roots, dataset.storage_class, dataset.storage_key)
        except storage.StorageError:
            size = None  # the object store does not answer: no number rather than a wrong one
        if roots.in_object_store(dataset.storage_class):
            return _out(view, roots, size)
        folder = roots.folder(dataset.storage_class, dataset.storage_key)
        # The host path is the platform's business: only the hub (and the operator's CLI, as the hub) learns it.
        return _out(view, roots, size, str(folder) if caller.is_hub else None)


@router.delete(
    "/datasets/{project}/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_SEEN, **_OWNERS},
)
def delete_dataset(
    project: ProjectPath, name: DatasetPath, caller: ServiceCaller, context: Context
) -> Response:
    """Delete a dataset with its files, grants and catalogue items. Owners of its project and administrators."""
    with context.session() as session:
        datasets.delete_dataset(session, _roots(context), project, name, actor=_actor(caller))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/datasets/{project}/{name}/grants/{grantee}",
    response_model=DatasetOut,
    responses={**_NOT_SEEN, **_OWNERS, 404: {"description": "no such dataset (that you may see) or project"}},
)
def grant(
    project: ProjectPath, name: DatasetPath, grantee: ProjectPath, caller: ServiceCaller, context: Context
) -> DatasetOut:
    """Give every member of project ``grantee`` read access (idempotent). Owners and administrators."""
    with context.session() as session:
        return _out(datasets.grant(session, project, name, grantee, actor=_actor(caller)), _roots(context))


@router.delete(
    "/datasets/{project}/{name}/grants/{grantee}",
    response_model=DatasetOut,
    responses={**_NOT_SEEN, **_OWNERS, 404: {"description": "no such dataset (that you may see) or grant"}},
)
def revoke(
    project: ProjectPath, name: DatasetPath, grantee: ProjectPath, caller: ServiceCaller, context: Context
) -> DatasetOut:
    """Withdraw project ``grantee``'s read access, at once for the API and at the next spawn for servers."""
    with context.session() as session:
        return _out(datasets.revoke(session, project, name, grantee, actor=_actor(caller)), _roots(context))


@router.get(
    "/users/{name}/dataset-mounts",
    response_model=MountList,
    responses={400: {"description": "the name breaks the account-name rule"}},
)
def dataset_mounts(name: AccountNamePath, caller: HubCaller, context: Context) -> MountList:
    """The hub only: the datasets the user's next server may use, with their folders and modes."""
    check_account_name(name)
    with context.session() as session:
        return MountList(
            mounts=[
                MountOut(
                    project=m.project, name=m.name, mode=m.mode, path=str(m.path), gid=m.gid, reason=m.reason
                )  # type: ignore[arg-type]
                for m in datasets.mounts_for(session, _roots(context), name, context.catalogue)
            ],
            roots=[str(root) for root in _roots(context).roots.values()],
        )


class Provider(_Body):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] | None = None
    roles: list[Literal["licensor", "producer", "processor", "host"]] = []
    url: Annotated[str, Field(max_length=500, pattern=r"^https?://")] | None = None


class CollectionMetadata(_Body):
    title: Annotated[str, Field(max_length=200)] | None = None
    description: Annotated[str, Field(max_length=8000)] | None = None
    license: Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9.+-]+$")] = Field(
        default="proprietary",
        description="an SPDX identifier (e.g. CC-BY-4.0), or proprietary / various / other",
    )
    keywords: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=100)] = (
        Field(
            default=[],
            description="e.g. GCMD science keywords: EARTH SCIENCE > CRYOSPHERE > SEA ICE > SEA ICE CONCENTRATION",
        )
    )
    providers: Annotated[list[Provider], Field(max_length=20)] = []
    doi: Annotated[str, Field(max_length=250)] | None = Field(
        default=None, description="e.g. 10.5067/MPYG15WAA4WX"
    )
    extent: dict[str, Any] | None = Field(
        default=None,
        description="{'spatial': {'bbox': [[w, s, e, n]]}, 'temporal': {'interval': [[start, end]]}}",
    )


class ItemsWritten(BaseModel):
    collection: str
    written: int


@router.put(
    "/datasets/{project}/{name}/collection",
    responses={**_NOT_SEEN, 403: {"description": "read-only access"}, **_OVER_QUOTA},
)
def describe_dataset(
    project: ProjectPath, name: DatasetPath, body: CollectionMetadata, caller: ServiceCaller, context: Context
) -> dict[str, Any]:
    """Set the dataset's STAC collection metadata (validated as a whole STAC Collection). Members."""
    with context.session() as session:
        view = datasets.load_dataset(session, project, name, _actor(caller))
        _check_write(session, context, view)
        return stac.set_collection_metadata(session, view, body.model_dump(exclude_none=True))


@router.post(
    "/datasets/{project}/{name}/items",
    response_model=ItemsWritten,
    responses={**_NOT_SEEN, 403: {"description": "read-only access"}, **_OVER_QUOTA},
)
async def add_items(
    project: ProjectPath, name: DatasetPath, request: Request, caller: ServiceCaller, context: Context
) -> ItemsWritten:
    """Add or replace STAC items (one Item, or a FeatureCollection of at most 500), all or nothing. Members."""
    try:
        body = await request.json()
    except ValueError:
        raise stac.StacInvalid("the body is not JSON") from None
    if isinstance(body, dict) and body.get("type") == "FeatureCollection":
        features = body.get("features")
        if not isinstance(features, list):
            raise stac.StacInvalid("features: a list of STAC items")
    else:
        features = [body]

    def write() -> ItemsWritten:
        with context.session() as session:
            view = datasets.load_dataset(session, project, name, _actor(caller))
            _check_write(session, context, view)
            count = stac.put_items(session, view, features)
            return ItemsWritten(collection=stac.collection_id(project, name), written=count)

    return await run_in_threadpool(write)


@router.delete(
    "/datasets/{project}/{name}/items/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_SEEN, 403: {"description": "read-only access"}},
)
def remove_item(
    project: ProjectPath,
    name: DatasetPath,
    item_id: Annotated[str, Path(max_length=200)],
    caller: ServiceCaller,
    context: Context,
) -> Response:
    """Remove one item from the dataset's collection. Members."""
    with context.session() as session:
        view = datasets.load_dataset(session, project, name, _actor(caller))
        stac.delete_item(session, view, item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class ObjectOut(BaseModel):
    key: str = Field(description="the object's key within the dataset")
    bytes: int
    modified: str = Field(description="when it was last written (ISO 8601)")


class ObjectList(BaseModel):
    objects: list[ObjectOut]
    next: str | None = Field(description="pass as ``after`` for the next page; null at the end")


class ObjectUrlRequest(_Body):
    key: str = Field(description=OBJECT_KEY_RULE)
    method: Literal["GET", "PUT"] = "GET"
    bytes: Annotated[int, Field(ge=0, le=MAX_PUT_BYTES)] | None = Field(
        default=None, description="PUT only: the upload's exact size (the URL is signed for it)"
    )


class ObjectUrl(BaseModel):
    key: str
    method: Literal["GET", "PUT"]
    url: str = Field(description="the presigned URL; send no Authorization header with it")
    expires_in: int = Field(description="seconds the URL works; revocation refuses new URLs at once")
    headers: dict[str, str] = Field(description="headers the request must carry (PUT: Content-Length)")


_OBJECTS = {
    **_NOT_SEEN,
    400: {"description": "a name, key or prefix breaks its rule"},
    409: {"description": "the dataset is not in the object store"},
    503: {"description": "the object store does not answer"},
}


@router.get("/datasets/{project}/{name}/objects", response_model=ObjectList, responses=_OBJECTS)
def list_objects(
    project: ProjectPath,
    name: DatasetPath,
    caller: ServiceCaller,
    context: Context,
    # No max_length: a key's rule (size included) is checked by the store's one function, which answers 400.
    prefix: Annotated[str, Query(description="only keys that start with it")] = "",
    after: Annotated[str, Query(description="the last key of the previous page")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> ObjectList:
    """The objects of a dataset in the object store, by key, a page at a time. Anyone who may read it."""
    with context.session() as session:
        _, found, next_after = datasets.list_objects(
            session,
            _roots(context),
            project,
            name,
            actor=_actor(caller),
            prefix=prefix,
            after=after,
            limit=limit,
        )
    return ObjectList(
        objects=[ObjectOut(key=o.key, bytes=o.bytes, modified=o.modified) for o in found], next=next_after
    )


@router.post(
    "/datasets/{project}/{name}/object-urls",
    response_model=ObjectUrl,
    responses={
        **_OBJECTS,
        **_OVER_QUOTA,
        403: {"description": "a PUT URL asked with read-only access"},
        404: {"description": "no such dataset (that you may see), or no such object (GET)"},
    },
)
def object_url(
    project: ProjectPath, name: DatasetPath, body: ObjectUrlRequest, caller: ServiceCaller, context: Context
) -> ObjectUrl:
    """A short-lived presigned URL for one object: GET for readers, PUT (of exactly ``bytes``) for members."""
    with context.session() as session:
        url, seconds = datasets.object_url(
            session,
            _roots(context),
            project,
            name,
            body.key,
            body.method,
            actor=_actor(caller),
            content_length=body.bytes,
            catalogue=context.catalogue,
        )
    headers = {"Content-Length": str(body.bytes)} if body.method == "PUT" else {}
    return ObjectUrl(key=body.key, method=body.method, url=url, expires_in=seconds, headers=headers)


@router.delete(
    "/datasets/{project}/{name}/objects",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_OBJECTS, 403: {"description": "read-only access"}},
)
def delete_object(
    project: ProjectPath,
    name: DatasetPath,
    key: Annotated[str, Query(description=OBJECT_KEY_RULE)],
    caller: ServiceCaller,
    context: Context,
) -> Response:
    """Delete one object of a dataset in the object store. Members."""
    with context.session() as session:
        datasets.delete_object(session, _roots(context), project, name, key, actor=_actor(caller))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
