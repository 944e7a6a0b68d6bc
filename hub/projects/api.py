"""HTTP API of projects (each a JupyterHub group of the same name), under ``<prefix>api/v1``.

* ``POST /projects`` ``{"name", "display_name"?, "description"?}`` — any user; the creator becomes the owner
  (admins and the hub may name another ``owner``); 422 for a name starting with the identity provider's group
  prefix (reserved); 409 if the name is taken, also by a JupyterHub group that is not a project's (nothing is
  stored, even when that group appears while the project is being created);
* ``GET /projects`` — the caller's projects (administrators and the hub: all);
* ``GET /projects/{name}`` — members and administrators;
* ``POST /projects/{name}/members`` ``{"user", "role"?}``, ``PATCH /projects/{name}/members/{user}``
  ``{"role"}``, ``POST /projects/{name}/owner`` ``{"user"}`` (transfer), ``DELETE /projects/{name}`` — owners and
  administrators; ``DELETE /projects/{name}/members/{user}`` — owners and administrators, or the member leaving;
* ``POST /projects/reconcile`` — administrators and the hub: bring JupyterHub's groups back in line now;
* ``GET /users/{name}/projects`` — the hub, administrators or the user: ``{"projects": ["<group name>", ...]}``
  (the OIDC login keeps these groups when it syncs the identity provider's groups).

Rules this module guarantees:

* Every change is committed to the database first and then mirrored into the hub's group
  (``project_groups.sync_after_commit``); the answer's ``group_sync`` says ``synced``, ``pending`` (the reconciler
  will finish it) or ``off`` (no hub, as in unit tests).
* Refusals have fitting statuses: bad names or fields 400, not allowed 403, unknown project, member or account
  404, taken names, duplicate members and removing the last owner 409. Nothing is stored for a refused request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from polartep_hub.accounts.api.schemas import ACCOUNT_NAME_SCHEMA, AccountNamePath
from polartep_hub.accounts.store import check_account_name, get_or_create_account
from polartep_hub.projects import store as projects
from polartep_hub.projects.groups import sync_after_commit
from polartep_hub.projects.models import Project
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.hub_api import HubApiError
from polartep_hub.service.web.access import AdminOrHubCaller, Context, ServiceCaller
from polartep_hub.service.web.identity import Identity

router = APIRouter()

# What the project routes answer besides their success (bodies: errors.ErrorOut; access refusals are added by
# errors.openapi_document). Statuses come from errors.ERROR_STATUS.
_NOT_ALLOWED = {403: {"description": "the caller may not do this to the project (owners and administrators)"}}
_NO_PROJECT = {
    400: {"description": "the project name breaks the rule"},
    404: {"description": "no such project (or member, or account)"},
}
_CONFLICT = {409: {"description": "a duplicate member, or the last owner would go"}}

# The name rules as the document states them; the checks (400 naming the rule) stay projects.py's and accounts.py's.
_PROJECT_NAME_SCHEMA = {"pattern": f"^{projects.PROJECT_NAME_PATTERN}$"}
ProjectPath = Annotated[
    str,
    Path(
        max_length=64, description="a project (JupyterHub group) name", json_schema_extra=_PROJECT_NAME_SCHEMA
    ),
]
UserPath = AccountNamePath
# Generous bounds for the raw input; the precise rules (and messages) are projects.py's.
_Text = Annotated[str, Field(max_length=8000)]
_Name = Annotated[str, Field(max_length=256)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(_Body):
    name: _Name = Field(
        description=projects.PROJECT_NAME_RULE, examples=["sea-ice"], json_schema_extra=_PROJECT_NAME_SCHEMA
    )
    display_name: _Text | None = Field(
        default=None,
        description="1-200 characters, not only white space; the name when not given",
        json_schema_extra={"pattern": r"\S"},
    )
    description: _Text = ""
    owner: _Name | None = Field(
        default=None,
        description="administrators and the hub only: the first owner",
        json_schema_extra=ACCOUNT_NAME_SCHEMA,
    )


class MemberAdd(_Body):
    user: _Name = Field(json_schema_extra=ACCOUNT_NAME_SCHEMA)
    role: Literal["owner", "member"] = "member"


class RoleChange(_Body):
    role: Literal["owner", "member"]


class OwnershipTransfer(_Body):
    user: _Name = Field(
        description="the new (only) owner; previous owners stay as members",
        json_schema_extra=ACCOUNT_NAME_SCHEMA,
    )


class MemberOut(BaseModel):
    name: str
    role: str
    added_at: datetime


class ProjectOut(BaseModel):
    name: str = Field(description="the project's name, which is its JupyterHub group's name")
    display_name: str
    description: str
    created_at: datetime
    owners: list[str]
    members: list[MemberOut] = Field(description="everyone in the project, owners included")
    your_role: str | None = Field(description="the caller's role, None when the caller is not a member")
    group_sync: Literal["synced", "pending", "conflict", "off"] | None = Field(
        default=None, description="after a change: whether JupyterHub's group already reflects it"
    )


class ProjectSummary(BaseModel):
    name: str
    display_name: str
    members: int
    your_role: str | None


class ProjectList(BaseModel):
    projects: list[ProjectSummary]


class UserProjects(BaseModel):
    projects: list[str] = Field(description="names of the JupyterHub groups that are the user's projects")


def _actor(caller: Identity) -> projects.Actor:
    if caller.is_hub:
        return projects.Actor(name=None, admin=True)
    return projects.Actor(name=caller.name, admin=caller.is_user and caller.admin)


def _out(project: Project, actor: projects.Actor, group_sync: str | None = None) -> ProjectOut:
    return ProjectOut(
        name=project.name,
        display_name=project.display_name,
        description=project.description,
        created_at=project.created_at,
        owners=projects.owners(project),
        members=[
            MemberOut(name=m.account.name, role=m.role, added_at=m.added_at)
            for m in sorted(project.members, key=lambda m: m.account.name)
        ],
        your_role=projects.role_of(project, actor.name),
        group_sync=group_sync,  # type: ignore[arg-type]
    )


def _synced(context: ServiceContext, name: str) -> str:
    return sync_after_commit(context.project_groups, context.reconciler, name)


def _user_caller_or_admin(caller: Identity) -> None:
    if not (caller.is_user or caller.is_hub):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="only users, administrators and the hub have projects"
        )


@router.post(
    "/projects",
    response_model=ProjectOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "the name or a field breaks its rule, or the hub named no owner"},
        403: {"description": "only administrators and the hub may name another owner"},
        404: {"description": "the named owner has no account"},
        409: {"description": "the name is taken (also by a JupyterHub group that is not a project's)"},
        422: {"description": "the name starts with the identity provider's reserved group prefix"},
        503: {"description": "JupyterHub's groups cannot be checked right now"},
    },
)
def create_project(body: ProjectCreate, caller: ServiceCaller, context: Context) -> ProjectOut:
    """Create a project; the caller (or, for administrators and the hub, ``owner``) becomes its owner."""
    _user_caller_or_admin(caller)
    actor = _actor(caller)
    if body.owner is not None and not actor.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only administrators may name another owner")
    owner = body.owner if body.owner is not None else actor.name
    if owner is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="owner: required when the hub creates a project"
        )
    reserved = context.config.oidc_group_prefix
    projects.check_project_name(body.name)
    projects.check_not_reserved(body.name, reserved)
    if context.project_groups is not None:
        try:
            taken = context.project_groups.foreign_group_exists(body.name)
        except HubApiError:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="cannot check JupyterHub's groups right now; try again",
            ) from None
        if taken:
            raise _foreign_group(body.name)
    with context.session() as session:
        if owner == actor.name:
            get_or_create_account(session, owner, default_plan=context.config.default_plan)
        project = projects.create_project(
            session,
            body.name,
            owner=owner,
            display_name=body.display_name,
            description=body.description,
            reserved_prefix=reserved,
        )
        answer = _out(project, actor)
    answer.group_sync = _synced(context, body.name)  # type: ignore[assignment]
    if answer.group_sync == "conflict":
        # A foreign group appeared between our check and our POST: the name is not ours; store nothing.
        with context.session() as session:
            projects.delete_project(session, body.name, actor=projects.Actor(name=None, admin=True))
        raise _foreign_group(body.name)
    return answer


def _foreign_group(name: str) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT,
        detail=f"JupyterHub already has a group {name!r} that is not a project; choose another name",
    )


@router.get("/projects", response_model=ProjectList)
def list_projects(caller: ServiceCaller, context: Context) -> ProjectList:
    """The caller's projects; administrators and the hub see every project."""
    _user_caller_or_admin(caller)
    actor = _actor(caller)
    with context.session() as session:
        return ProjectList(
            projects=[
                ProjectSummary(
                    name=p.name,
                    display_name=p.display_name,
                    members=len(p.members),
                    your_role=projects.role_of(p, actor.name),
                )
                for p in projects.visible_projects(session, actor)
            ]
        )


@router.post(
    "/projects/reconcile",
    responses={502: {"description": "JupyterHub refused a change"}, 503: {"description": "no hub"}},
)
def reconcile(caller: AdminOrHubCaller, context: Context) -> dict:
    """Bring every project's JupyterHub group in line with the database now; answers what it changed."""
    if context.project_groups is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="this service runs without a hub")
    try:
        return context.project_groups.reconcile().as_dict()
    except HubApiError as error:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=str(error)) from None


@router.get("/projects/{name}", response_model=ProjectOut, responses={**_NO_PROJECT, **_NOT_ALLOWED})
def get_project(name: ProjectPath, caller: ServiceCaller, context: Context) -> ProjectOut:
    """One project with its members; for its members and administrators."""
    _user_caller_or_admin(caller)
    actor = _actor(caller)
    with context.session() as session:
        project = projects.load_project(session, name)
        if not projects.may_see(project, actor):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"only members of project {name!r} and administrators may see it",
            )
        return _out(project, actor)


@router.post(
    "/projects/{name}/members",
    response_model=ProjectOut,
    status_code=status.HTTP_201_CREATED,
    responses={**_NO_PROJECT, **_NOT_ALLOWED, **_CONFLICT},
)
def add_member(name: ProjectPath, body: MemberAdd, caller: ServiceCaller, context: Context) -> ProjectOut:
    """Add a member (``role`` member by default, or owner). Owners and administrators."""
    _user_caller_or_admin(caller)
    actor = _actor(caller)
    with context.session() as session:
        answer = _out(projects.add_member(session, name, body.user, role=body.role, actor=actor), actor)
    answer.group_sync = _synced(context, name)  # type: ignore[assignment]
    return answer


@router.patch(
    "/projects/{name}/members/{user}",
    response_model=ProjectOut,
    responses={**_NO_PROJECT, **_NOT_ALLOWED, **_CONFLICT},
)
def change_role(
    name: ProjectPath, user: UserPath, body: RoleChange, caller: ServiceCaller, context: Context
) -> ProjectOut:
    """Make a member an owner or a plain member (never the last owner a member). Owners and administrators."""
    _user_caller_or_admin(caller)
    actor = _actor(caller)
    with context.session() as session:
        answer = _out(projects.set_role(session, name, user, body.role, actor=actor), actor)
    answer.group_sync = _synced(context, name)  # type: ignore[assignment]
    return answer


@router.delete(
    "/projects/{name}/members/{user}",
    response_model=ProjectOut,
    responses={**_NO_PROJECT, **_NOT_ALLOWED, **_CONFLICT},
)
def remove_member(name: ProjectPath, user: UserPath, caller: ServiceCaller, context: Context) -> ProjectOut:
    """Remove a member (owners and administrators), or leave (a member removing themself); not the last owner."""
    _user_caller_or_admin(caller)
    actor = _actor(caller)
    with context.session() as session:
        answer = _out(projects.remove_member(session, name, user, actor=actor), actor)
    answer.group_sync = _synced(context, name)  # type: ignore[assignment]
    return answer


@router.post(
    "/projects/{name}/owner",
    response_model=ProjectOut,
    responses={**_NO_PROJECT, **_NOT_ALLOWED, **_CONFLICT},
)
def transfer(
    name: ProjectPath, body: OwnershipTransfer, caller: ServiceCaller, context: Context
) -> ProjectOut:
    """Make ``user`` the only owner (added if needed); the previous owners stay as members."""
    _user_caller_or_admin(caller)
    actor = _actor(caller)
    with context.session() as session:
        answer = _out(projects.transfer_ownership(session, name, body.user, actor=actor), actor)
    answer.group_sync = _synced(context, name)  # type: ignore[assignment]
    return answer


@router.delete(
    "/projects/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NO_PROJECT, **_NOT_ALLOWED},
)
def delete_project(name: ProjectPath, caller: ServiceCaller, context: Context) -> Response:
    """Delete the project and its JupyterHub group. Owners and administrators."""
    _user_caller_or_admin(caller)
    with context.session() as session:
        projects.delete_project(session, name, actor=_actor(caller))
    sync = _synced(context, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"X-Polartep-Group-Sync": sync})


@router.get(
    "/users/{name}/projects",
    response_model=UserProjects,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "not yours"},
    },
)
def user_projects(name: UserPath, caller: ServiceCaller, context: Context) -> UserProjects:
    """The names of the user's projects (their JupyterHub groups). The hub, administrators, or the user."""
    if not (caller.is_hub or (caller.is_user and (caller.admin or caller.name == name))):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may only list your own projects")
    check_account_name(name)
    with context.session() as session:
        return UserProjects(projects=projects.project_names_of(session, name))
