"""HTTP API of dashboards, under ``<prefix>api/v1``.

* ``POST /dashboards`` ``{"title", "description"?, "notebook"}`` — a user publishes a notebook: it is frozen as
  the dashboard's first version (``store.publish``) and its server ``dash-<id>`` is started; 201 with the
  dashboard, its stable ``url`` (``/user/<owner>/dash-<id>/``) and whether the start was asked. With ``"run"``
  instead of ``"notebook"``: the caller's own successful processor run's output notebook, with the run's declared
  file outputs frozen beside it (at their relative paths); the caller, the run's invoker, owns the dashboard, and the
  run's API answer (``GET /runs/{id}``) lists it under ``published``;
* ``POST /dashboards`` ``{"title", "kind": "panel"|"web", "app": {"entry", "runner"?, "files"}}`` — a hosted app:
  its files (relative path -> base64) are frozen as a version with a manifest (``store.freeze_app``) and served by
  the platform's runner for its kind on the same kind of server ``dash-<id>``, with the same sharing, gallery, life
  cycle and allowance; the entry point is data in the runner's fixed command, never a command;
* ``GET /dashboards/{id}/versions/{sha256}/files`` and ``.../files/{path}`` — the files frozen with a version (the
  dashboard server fetches them with its owner's token and writes them beside the notebook);
* ``GET /dashboards`` — the caller's dashboards;
* ``GET /dashboards/{id}``, ``DELETE /dashboards/{id}`` (stops and removes the server and its shares) — owner or
  administrator;
* ``POST /dashboards/{id}/versions`` ``{"notebook"}`` — a new frozen version becomes the current one (served from
  the next start of the server);
* ``GET /dashboards/{id}/versions/{sha256}/notebook`` — the frozen notebook (the dashboard server fetches it with
  its own token, which is the owner's);
* ``GET /dashboards/{id}/shares``, ``POST /dashboards/{id}/shares`` ``{"user"|"group"}``,
  ``DELETE /dashboards/{id}/shares/users/{name}`` and ``.../groups/{name}`` — the owner lists, grants and revokes
  access through JupyterHub's own shares (``access:servers`` and ``start:servers`` on that one server only);
* ``POST /dashboards/{id}/share-code`` ``{"expires_in"?}`` — a JupyterHub share code: anyone with a platform account
  who opens its ``accept_url`` may open the dashboard (until it expires or the owner revokes every share);
* ``GET /users/{name}/dashboards/{id}/launch`` — the hub only: what the spawner needs to start the dashboard's
  server (its current version and the hosting profile); 404 when the dashboard is not that user's.

Rules this module guarantees:

* The routes that carry a notebook accept bodies up to ``store.NOTEBOOK_BODY_BYTES`` (a notebook of up to 10 MiB
  with its plots); a larger one is refused 413 with the limit in the message, before it is read.

* Only the owner and administrators see, change, share or delete a dashboard; anyone else gets 404 (the id is not
  confirmed). Shares go through JupyterHub with the service's own token; the platform stores no copy of who has
  access, so JupyterHub's answer is always the truth and a revocation is in force at the viewer's next request.
* A share grants exactly ``access:servers!server=<owner>/dash-<id>`` (open it),
  ``start:servers!server=<owner>/dash-<id>`` (start it again after the idle culler stopped it) and
  ``read:servers!server=<owner>/dash-<id>`` (follow the start on the hub's progress page), never anything on the
  owner's other servers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from polartep_hub.accounts.entitlements import entitlement
from polartep_hub.accounts.store import get_or_create_account, require_account
from polartep_hub.dashboards import store
from polartep_hub.dashboards.hosting import hosting_allowance
from polartep_hub.dashboards.models import Dashboard
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.hub_api import HubApiError
from polartep_hub.service.web.access import Context, HubCaller, ServiceCaller, UserCaller
from polartep_hub.service.web.identity import Identity
from polartep_hub.usage.storage import check_account_write

router = APIRouter()

# The routes (under <prefix>api/v1) whose bodies carry a notebook: they accept up to store.NOTEBOOK_BODY_BYTES
# (the service's body limit, service/app.py), every other route keeps the service's default.
LARGE_BODY_PATHS = ("/dashboards", "/dashboards/{dashboard_id}/versions")
NOTEBOOK_BODY_BYTES = store.NOTEBOOK_BODY_BYTES

DashboardPath = Annotated[
    str,
    Path(description="a dashboard id", json_schema_extra={"pattern": f"^{store.DASHBOARD_ID_PATTERN}$"}),
]
_NOT_FOUND = {404: {"description": "no such dashboard of yours"}}
_HUB_DOWN = {502: {"description": "JupyterHub refused or did not answer"}}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppSpec(_Body):
    entry: Annotated[str, Field(max_length=300)] = Field(
        description="panel: one of the app's .py or .ipynb files; web: module:attribute (asgi, wsgi) or the "
        "index .html file (static)"
    )
    runner: Literal["asgi", "wsgi", "static"] | None = Field(
        default=None, description="web apps only: how the platform runs it (default asgi)"
    )
    files: dict[Annotated[str, Field(max_length=512)], str] = Field(
        description="the app's files: relative path -> base64 content; at most 20 files, 8 MiB together"
    )

    def decoded(self) -> dict[str, bytes]:
        """The files' bytes; ``InvalidDashboard`` (400) naming a file that is not base64."""
        import base64
        import binascii

        decoded = {}
        for path, encoded in self.files.items():
            try:
                decoded[path] = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise store.InvalidDashboard(f"app.files: {path[:120]!r} is not base64") from None
        return decoded


class DashboardCreate(_Body):
    title: Annotated[str, Field(max_length=4000, description="1-200 characters, not only white space")]
    description: Annotated[str, Field(max_length=4000, description="at most 2000 characters")] = ""
    kind: Literal["voila", "panel", "web"] = Field(
        default="voila", description="voila: a notebook (notebook or run); panel or web: a hosted app (app)"
    )
    app: AppSpec | None = Field(
        default=None, description="a hosted app's files and entry point (kind panel, web)"
    )
    notebook: dict[str, Any] | None = Field(
        default=None, description="the notebook (nbformat 4 JSON), at most 10 MiB; or give run"
    )
    run: Annotated[str, Field(max_length=36)] | None = Field(
        default=None,
        description="a successful processor run of the caller: its output notebook with its file outputs",
    )

    @model_validator(mode="after")
    def one_source(self) -> DashboardCreate:
        if self.kind != "voila":
            if self.app is None or self.notebook is not None or self.run is not None:
                raise ValueError(
                    f"a {self.kind} app takes app (its files and entry point), not notebook or run"
                )
            return self
        if self.app is not None:
            raise ValueError("app is for kind panel or web; a voila dashboard takes notebook or run")
        if (self.notebook is None) == (self.run is None):
            raise ValueError("give exactly one of notebook or run")
        return self


class VersionCreate(_Body):
    notebook: dict[str, Any] | None = Field(default=None, description="a voila dashboard's new notebook")
    app: AppSpec | None = Field(default=None, description="a hosted app's new files and entry point")

    @model_validator(mode="after")
    def one_source(self) -> VersionCreate:
        if (self.notebook is None) == (self.app is None):
            raise ValueError("give exactly one of notebook (voila) or app (panel, web)")
        return self


class ShareCreate(_Body):
    user: Annotated[str, Field(max_length=256)] | None = None
    group: Annotated[str, Field(max_length=256)] | None = None

    @model_validator(mode="after")
    def one_target(self) -> ShareCreate:
        if (self.user is None) == (self.group is None):
            raise ValueError("give exactly one of user or group")
        return self


class ShareCodeCreate(_Body):
    expires_in: Annotated[int, Field(ge=60, le=365 * 86400)] = 7 * 86400


class DashboardOut(BaseModel):
    id: str
    owner: str
    title: str
    description: str
    version: str = Field(description="SHA-256 of the current frozen notebook")
    server: str = Field(description="the owner's JupyterHub named server that serves it")
    url: str = Field(description="the stable address, below the hub's public URL")
    created_at: datetime
    updated_at: datetime
    start: Literal["asked", "running", "failed", "not asked"] | None = None
    run: str | None = Field(default=None, description="the processor run whose results it shows, if any")
    access: Literal["own", "shared"] | None = Field(
        default=None, description="in lists: yours, or shared with you"
    )
    kind: Literal["voila", "panel", "web"] = Field(
        default="voila", description="voila: a notebook dashboard; panel or web: a hosted app"
    )


class DashboardList(BaseModel):
    dashboards: list[DashboardOut]


class ShareOut(BaseModel):
    kind: Literal["user", "group"]
    name: str
    created_at: str | None = None


class ShareList(BaseModel):
    shares: list[ShareOut]


class ShareCodeOut(BaseModel):
    accept_url: str = Field(description="send this to people: opening it while logged in grants access")
    expires_at: str | None


class LaunchOut(BaseModel):
    id: str
    owner: str
    version: str
    profile: str | None = Field(description="the hosting profile the server runs with; None: none allowed")
    title: str
    kind: Literal["voila", "panel", "web"] = Field(default="voila", description="which runner serves it")


def _check_storage(
    session, context: ServiceContext, owner: str, notebook: object, files: dict[str, bytes] | None = None
) -> None:
    """413 when the owner's home class cannot take the frozen notebook and ``files`` (a run's outputs frozen with it;
    usage/storage.py); 400 first for a notebook that breaks a rule."""
    frozen, _ = store.freeze_notebook(notebook)
    size = len(frozen) + sum(len(content) for content in (files or {}).values())
    check_account_write(session, context.catalogue, owner, context.config.home_storage_class, size)


def _actor(caller: Identity) -> store.Actor:
    return store.Actor(name=None if caller.is_hub else caller.name, admin=caller.is_hub or caller.admin)


def _out(dashboard: Dashboard, start: str | None = None, access: str | None = None) -> DashboardOut:
    server = store.server_name(dashboard.id)
    return DashboardOut(
        id=dashboard.id,
        owner=dashboard.owner.name,
        title=dashboard.title,
        description=dashboard.description,
        version=dashboard.current_sha256,
        server=server,
        url=f"/user/{dashboard.owner.name}/{server}/",
        created_at=dashboard.created_at,
        updated_at=dashboard.updated_at,
        start=start,  # type: ignore[arg-type]
        access=access,  # type: ignore[arg-type]
        run=dashboard.source_run_id,
        kind=dashboard.kind,  # type: ignore[arg-type]
    )


def share_scopes(owner: str, server: str) -> list[str]:
    """What a share of a dashboard grants, on that one server: opening it, starting it again after the idle culler
    stopped it, and reading its state (so the hub's progress page shows the viewer how the start goes)."""
    return [
        f"access:servers!server={owner}/{server}",
        f"start:servers!server={owner}/{server}",
        f"read:servers!server={owner}/{server}",
    ]


def _hub(context: ServiceContext):
    if context.hub_api is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="no JupyterHub to share through")
    return context.hub_api


def _hub_failed(error: HubApiError) -> HTTPException:
    if 400 <= error.status < 500 and "No such" in str(error):
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error).split(": ", 1)[-1])
    return HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"JupyterHub: {error}")


@router.post(
    "/dashboards",
    response_model=DashboardOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "the notebook, title or description breaks its rule"},
        404: {"description": "no such run of the caller (run), or one of its files is missing"},
        409: {"description": "the hosting allowance is used up, or the run is not successful"},
        413: {
            "description": "the notebook is larger than 10 MiB (or the run's files than 20 MiB), or the owner's "
            "storage is over quota"
        },
    },
)
def publish_dashboard(body: DashboardCreate, caller: UserCaller, context: Context) -> DashboardOut:
    """Publish a notebook (or a run's results) as a new dashboard of the caller and start its server."""
    if body.app is not None:
        out = _publish_app(context, caller, body, body.app)
    else:
        # Read before the write transaction below: the run's files come from the caller's home, not the database.
        notebook, files = (body.notebook, {}) if body.run is None else _run_results(context, caller, body.run)
        with context.session() as session:
            account = get_or_create_account(session, caller.name, default_plan=context.config.default_plan)
            rights = entitlement(session, context.catalogue, account, admin=caller.admin)
            allowance = hosting_allowance(context.catalogue, rights.profiles, rights.subscriptions)
            _check_storage(session, context, caller.name, notebook, files)
            dashboard = store.publish(
                session,
                account,
                allowance,
                title=body.title,
                description=body.description,
                notebook=notebook,
                files=files,
                source_run_id=body.run,
                storage_class=context.config.home_storage_class,
            )
            out = _out(dashboard)
    # The server's record must exist in JupyterHub before anyone can be given a share of it: start it now.
    if context.hub_api is None:
        out.start = "not asked"
        return out
    try:
        code = context.hub_api.start_server(out.owner, out.server, {"dashboard": out.id})
        out.start = "running" if code == 400 else "asked"
    except HubApiError:
        # Published all the same: the owner (or a viewer) starts it from its URL; the reason is in the hub's log.
        out.start = "failed"
    return out


def _publish_app(
    context: ServiceContext, caller: Identity, body: DashboardCreate, app: AppSpec
) -> DashboardOut:
    """Freeze a hosted app (``store.publish_app``) within the caller's allowance and storage quota."""
    files = app.decoded()
    with context.session() as session:
        account = get_or_create_account(session, caller.name, default_plan=context.config.default_plan)
        rights = entitlement(session, context.catalogue, account, admin=caller.admin)
        allowance = hosting_allowance(context.catalogue, rights.profiles, rights.subscriptions)
        # The rules first (400 before 413 for a bad app), then the owner's storage.
        store.freeze_app(body.kind, app.entry, app.runner, files)
        size = sum(len(content) for content in files.values())
        check_account_write(session, context.catalogue, caller.name, context.config.home_storage_class, size)
        dashboard = store.publish_app(
            session,
            account,
            allowance,
            title=body.title,
            description=body.description,
            kind=body.kind,
            entry=app.entry,
            runner=app.runner,
            files=files,
            storage_class=context.config.home_storage_class,
        )
        return _out(dashboard)


@router.get("/dashboards", response_model=DashboardList, responses=_HUB_DOWN)
def list_dashboards(
    caller: UserCaller,
    context: Context,
    include: Annotated[
        Literal["own", "shared"], Query(description="shared: also those shared with you")
    ] = "own",
) -> DashboardList:
    """The caller's own dashboards (``include=shared``: and those shared with them), newest first."""
    if include == "shared":
        shared: list[dict[str, Any]] = []
        if context.hub_api is not None:
            try:
                shared = context.hub_api.shared_with(caller.name)
            except HubApiError as error:
                raise _hub_failed(error) from None
        with context.session() as session:
            return DashboardList(
                dashboards=[_out(d, access=a) for d, a in store.visible_to(session, caller.name, shared)]
            )
    with context.session() as session:
        return DashboardList(dashboards=[_out(d, access="own") for d in store.owned_by(session, caller.name)])


@router.get(
    "/dashboards/{dashboard_id}/thumbnail.png",
    responses={
        404: {"description": "no such dashboard you may open, or it has no image output"},
        200: {"content": {"image/png": {}}, "description": "the first image the notebook shows"},
    },
)
def dashboard_thumbnail(dashboard_id: DashboardPath, caller: ServiceCaller, context: Context) -> Response:
    """The dashboard's thumbnail (its notebook's first PNG output), for those who may open it."""
    shared: list[dict[str, Any]] = []
    if context.hub_api is not None and not caller.admin:
        try:
            shared = context.hub_api.shared_with(caller.name)
        except HubApiError as error:
            raise _hub_failed(error) from None
    with context.session() as session:
        visible = {d.id: d for d, _ in store.visible_to(session, caller.name, shared)}
        dashboard = visible.get(dashboard_id)
        if dashboard is None and caller.admin:
            dashboard = store.get_dashboard(session, dashboard_id, _actor(caller))
        if dashboard is None:
            raise store.DashboardNotFound(f"no dashboard {dashboard_id!r} you may open")
        image = store.thumbnail(store.version(session, dashboard, dashboard.current_sha256).notebook)
    if image is None:
        raise store.DashboardNotFound(f"dashboard {dashboard_id!r} shows no image")
    return Response(image, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.get("/dashboards/{dashboard_id}", response_model=DashboardOut, responses=_NOT_FOUND)
def get_dashboard(dashboard_id: DashboardPath, caller: ServiceCaller, context: Context) -> DashboardOut:
    with context.session() as session:
        return _out(store.get_dashboard(session, dashboard_id, _actor(caller)))


@router.delete(
    "/dashboards/{dashboard_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_NOT_FOUND, **_HUB_DOWN},
)
def delete_dashboard(dashboard_id: DashboardPath, caller: ServiceCaller, context: Context) -> Response:
    """Stop and remove the dashboard's server (its shares go with it), then forget the dashboard."""
    with context.session() as session:
        dashboard = store.get_dashboard(session, dashboard_id, _actor(caller))
        owner, server = dashboard.owner.name, store.server_name(dashboard.id)
    if context.hub_api is not None:
        try:
            # First the server and its shares: a failure here leaves the dashboard listed, so it can be retried.
            context.hub_api.revoke_all_shares(owner, server)
            context.hub_api.remove_server(owner, server)
        except HubApiError as error:
            raise _hub_failed(error) from None
    with context.session() as session:
        store.delete(
            session,
            store.get_dashboard(session, dashboard_id, _actor(caller)),
            storage_class=context.config.home_storage_class,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/dashboards/{dashboard_id}/versions",
    response_model=DashboardOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_NOT_FOUND,
        400: {"description": "the notebook breaks a rule"},
        413: {"description": "the notebook is larger than 10 MiB, or the owner's storage is over quota"},
    },
)
def publish_version(
    dashboard_id: DashboardPath, body: VersionCreate, caller: UserCaller, context: Context
) -> DashboardOut:
    """Freeze a new version; the server serves it from its next start."""
    with context.session() as session:
        dashboard = store.get_dashboard(session, dashboard_id, _actor(caller))
        if body.app is not None:
            if dashboard.kind == "voila":
                raise store.InvalidDashboard(
                    f"dashboard {dashboard.id} is a notebook: give notebook, not app"
                )
            files = body.app.decoded()
            store.freeze_app(dashboard.kind, body.app.entry, body.app.runner, files)
            size = sum(len(content) for content in files.values())
            check_account_write(
                session, context.catalogue, caller.name, context.config.home_storage_class, size
            )
            store.add_app_version(
                session,
                dashboard,
                body.app.entry,
                body.app.runner,
                files,
                storage_class=context.config.home_storage_class,
            )
            return _out(dashboard)
        _check_storage(session, context, caller.name, body.notebook)
        store.add_version(session, dashboard, body.notebook, storage_class=context.config.home_storage_class)
        return _out(dashboard)


def _run_results(context: ServiceContext, caller: Identity, run_id: str) -> tuple[object, dict[str, bytes]]:
    """The caller's own successful run's output notebook and declared file outputs (by their relative paths)."""
    import json

    from polartep_hub.processors import run_task, runs_api
    from polartep_hub.processors import runs as processor_runs
    from polartep_hub.processors.models import ProcessorVersion

    assert caller.name is not None
    with context.session() as session:
        run, processor, _ = processor_runs.run_of(session, run_id, runs_api.actor_of(caller))
        if run.status != "successful":
            raise store.RunNotReady(
                f"run {run_id} is {run.status}: only a successful run's results are published"
            )
        definition = session.get(ProcessorVersion, run.version_id).definition
    content = runs_api.read_run_file(context, caller.name, run_id, run_task.OUTPUT_NOTEBOOK)
    try:
        notebook = json.loads(content)
    except ValueError:
        raise store.InvalidDashboard(f"run {run_id}: its output notebook is not JSON") from None
    files = {}
    for spec in (definition.get("outputs") or {}).values():
        if isinstance(spec, dict) and spec.get("type") == "file" and spec.get("path"):
            relative = str(spec["path"])
            files[relative] = runs_api.read_run_file(context, caller.name, run_id, relative)
    return notebook, files


@router.get(
    "/dashboards/{dashboard_id}/versions/{sha256}/files",
    response_model=dict[str, list[dict[str, Any]]],
    responses=_NOT_FOUND,
)
def list_version_files(
    dashboard_id: DashboardPath,
    sha256: Annotated[str, Path(max_length=64)],
    caller: ServiceCaller,
    context: Context,
) -> dict[str, list[dict[str, Any]]]:
    """The files frozen with one version beside its notebook (``{"files": [{"path", "size"}]}``)."""
    with context.session() as session:
        dashboard = store.get_dashboard(session, dashboard_id, _actor(caller))
        store.version(session, dashboard, sha256)
        return {
            "files": [
                {"path": f.path, "size": f.size} for f in store.version_files(session, dashboard, sha256)
            ]
        }


@router.get(
    "/dashboards/{dashboard_id}/versions/{sha256}/files/{path:path}",
    response_class=Response,
    responses={**_NOT_FOUND, 200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
)
def version_file(
    dashboard_id: DashboardPath,
    sha256: Annotated[str, Path(max_length=64)],
    path: Annotated[str, Path(max_length=512)],
    caller: ServiceCaller,
    context: Context,
) -> Response:
    """One file frozen with a version (the dashboard server fetches it with the owner's token)."""
    with context.session() as session:
        dashboard = store.get_dashboard(session, dashboard_id, _actor(caller))
        found = store.version_file(session, dashboard, sha256, path)
        return Response(
            found.content,
            media_type="application/octet-stream",
            headers={"X-Content-Type-Options": "nosniff", "Content-Disposition": "attachment"},
        )


@router.get(
    "/dashboards/{dashboard_id}/versions/{sha256}/notebook",
    responses={
        **_NOT_FOUND,
        200: {"content": {"application/json": {}}, "description": "the frozen notebook"},
    },
)
def version_notebook(
    dashboard_id: DashboardPath,
    sha256: Annotated[str, Path(max_length=64, json_schema_extra={"pattern": "^[0-9a-f]{64}$"})],
    caller: ServiceCaller,
    context: Context,
) -> Response:
    """The frozen notebook of one version, byte for byte as stored."""
    with context.session() as session:
        dashboard = store.get_dashboard(session, dashboard_id, _actor(caller))
        found = store.version(session, dashboard, sha256)
        return Response(found.notebook, media_type="application/json")


@router.get(
    "/users/{name}/dashboards/{dashboard_id}/launch",
    response_model=LaunchOut,
    responses=_NOT_FOUND,
)
def launch(name: str, dashboard_id: DashboardPath, caller: HubCaller, context: Context) -> LaunchOut:
    """For the spawner: the current version and hosting profile of ``name``'s dashboard (404 if not theirs)."""
    with context.session() as session:
        dashboard = store.get_dashboard(session, dashboard_id, store.Actor(name=name))
        account = require_account(session, name)
        rights = entitlement(session, context.catalogue, account, admin=False)
        allowance = hosting_allowance(context.catalogue, rights.profiles, rights.subscriptions)
        return LaunchOut(
            id=dashboard.id,
            owner=name,
            version=dashboard.current_sha256,
            profile=allowance.profile,
            title=dashboard.title,
            kind=dashboard.kind,  # type: ignore[arg-type]
        )


def _owned(context: ServiceContext, dashboard_id: str, caller: Identity) -> tuple[str, str]:
    with context.session() as session:
        dashboard = store.get_dashboard(session, dashboard_id, _actor(caller))
        return dashboard.owner.name, store.server_name(dashboard.id)


def _share_out(share: dict[str, Any]) -> ShareOut:
    if share.get("user"):
        return ShareOut(kind="user", name=share["user"]["name"], created_at=share.get("created_at"))
    return ShareOut(kind="group", name=share["group"]["name"], created_at=share.get("created_at"))


@router.get(
    "/dashboards/{dashboard_id}/shares", response_model=ShareList, responses={**_NOT_FOUND, **_HUB_DOWN}
)
def list_shares(dashboard_id: DashboardPath, caller: ServiceCaller, context: Context) -> ShareList:
    """Who may open the dashboard besides its owner (users and groups), as JupyterHub records it."""
    owner, server = _owned(context, dashboard_id, caller)
    try:
        shares = _hub(context).shares(owner, server)
    except HubApiError as error:
        raise _hub_failed(error) from None
    return ShareList(shares=[_share_out(share) for share in shares])


@router.post(
    "/dashboards/{dashboard_id}/shares",
    response_model=ShareOut,
    status_code=status.HTTP_201_CREATED,
    responses={**_NOT_FOUND, **_HUB_DOWN},
)
def grant_share(
    dashboard_id: DashboardPath, body: ShareCreate, caller: ServiceCaller, context: Context
) -> ShareOut:
    """Share the dashboard with a user or a group (a project): they may open it and start it."""
    owner, server = _owned(context, dashboard_id, caller)
    try:
        share = _hub(context).grant_share(
            owner, server, user=body.user, group=body.group, scopes=share_scopes(owner, server)
        )
    except HubApiError as error:
        raise _hub_failed(error) from None
    return _share_out(share)


@router.delete(
    "/dashboards/{dashboard_id}/shares/{kind}/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_NOT_FOUND, **_HUB_DOWN},
)
def revoke_share(
    dashboard_id: DashboardPath,
    kind: Literal["users", "groups"],
    name: Annotated[str, Path(max_length=256)],
    caller: ServiceCaller,
    context: Context,
) -> Response:
    """Take the access of one user or group away; in force at their next request."""
    owner, server = _owned(context, dashboard_id, caller)
    try:
        if kind == "users":
            _hub(context).revoke_share(owner, server, user=name)
        else:
            _hub(context).revoke_share(owner, server, group=name)
    except HubApiError as error:
        raise _hub_failed(error) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/dashboards/{dashboard_id}/share-code",
    response_model=ShareCodeOut,
    status_code=status.HTTP_201_CREATED,
    responses={**_NOT_FOUND, **_HUB_DOWN},
)
def create_share_code(
    dashboard_id: DashboardPath, body: ShareCodeCreate, caller: ServiceCaller, context: Context
) -> ShareCodeOut:
    """A link for anyone with a platform account (JupyterHub share code); revoke with ``DELETE .../shares``."""
    owner, server = _owned(context, dashboard_id, caller)
    try:
        code = _hub(context).create_share_code(
            owner, server, scopes=share_scopes(owner, server), expires_in=body.expires_in
        )
    except HubApiError as error:
        raise _hub_failed(error) from None
    return ShareCodeOut(accept_url=code["accept_url"], expires_at=code.get("expires_at"))


@router.delete(
    "/dashboards/{dashboard_id}/shares",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_NOT_FOUND, **_HUB_DOWN},
)
def revoke_all(dashboard_id: DashboardPath, caller: ServiceCaller, context: Context) -> Response:
    """Take every share and every share code of the dashboard away."""
    owner, server = _owned(context, dashboard_id, caller)
    try:
        _hub(context).revoke_all_shares(owner, server)
    except HubApiError as error:
        raise _hub_failed(error) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


__all__ = ["router", "share_scopes"]
