"""Projects: named groups of accounts with owners and members; each project is the JupyterHub group of the same name.

Rules this module guarantees:

* Project names follow one rule, ``PROJECT_NAME_RULE``: 1-64 characters of lower-case letters, digits, ``.``,
  ``_`` and ``-``, starting with a letter or a digit (so no name is ``.`` or ``..`` in a URL). Names are taken as
  given, never rewritten; anything else is ``InvalidProjectName`` with the rule.
* Names starting with the identity provider's group prefix (``POLARTEP_OIDC_GROUP_PREFIX``, default ``oidc-``) are
  reserved for the provider's groups, whatever the auth mode (a later switch to OIDC must not meet squatted names):
  ``ReservedProjectName`` (422), naming the prefix. Projects that already hold such a name keep it.
* Display names are 1-200 characters and descriptions at most 2000, NFC-normalised and stripped, with no control
  characters (``personal_details.clean_text``); markup is kept as text and escaped wherever it is shown.
* A project always has at least one owner: the creator is its first owner, and removing or demoting the last owner
  is ``LastOwner`` (transfer ownership first).
* Who may do what: anyone may create; members and admins see a project; owners and admins add and remove members,
  change roles, transfer ownership and delete it; any member may leave. Refusals are ``ProjectForbidden``.
* Every change commits before the function returns; mirroring it into JupyterHub is ``project_groups.py``'s job,
  done after the commit (the database is the truth the hub is reconciled to).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from polartep_hub.accounts.details import PersonalDetailError, clean_text
from polartep_hub.accounts.models import Account
from polartep_hub.accounts.store import AccountError, AccountNotFound, get_account
from polartep_hub.projects.models import Project, ProjectMember
from polartep_hub.service.orm import utcnow

PROJECT_NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
PROJECT_NAME_RULE = (
    "1-64 characters of lower-case letters, digits, '.', '_' and '-', starting with a letter or a digit"
)
MAX_DISPLAY_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 2000
ROLES = ("owner", "member")
_PROJECT_NAME = re.compile(PROJECT_NAME_PATTERN)

log = logging.getLogger(__name__)


class ProjectError(AccountError):
    """A project request cannot be done; the message is safe to show (its HTTP status: ``errors.ERROR_STATUS``)."""


class InvalidProjectName(ProjectError):
    pass


class ReservedProjectName(ProjectError):
    pass


class InvalidProjectField(ProjectError):
    pass


class ProjectNotFound(ProjectError):
    pass


class MemberNotFound(ProjectError):
    pass


class ProjectExists(ProjectError):
    pass


class AlreadyMember(ProjectError):
    pass


class LastOwner(ProjectError):
    pass


class ProjectForbidden(ProjectError):
    pass


class UnknownAccount(ProjectError):
    pass


def check_project_name(name: str) -> str:
    """``name`` if it is a valid project name; ``InvalidProjectName`` (with the rule) otherwise."""
    if not isinstance(name, str) or not _PROJECT_NAME.fullmatch(name):
        raise InvalidProjectName(f"invalid project name {str(name)[:80]!r}: use {PROJECT_NAME_RULE}")
    return name


def check_not_reserved(name: str, reserved_prefix: str) -> str:
    """``name`` unless it starts with the identity provider's group prefix (``ReservedProjectName``)."""
    if reserved_prefix and name.startswith(reserved_prefix):
        raise ReservedProjectName(
            f"name: project names may not start with {reserved_prefix!r}, which is reserved for the identity "
            "provider's groups (POLARTEP_OIDC_GROUP_PREFIX); choose another name"
        )
    return name


def clean_display_name(value: str) -> str:
    try:
        return clean_text(value, "display_name", max_length=MAX_DISPLAY_NAME_LENGTH)
    except PersonalDetailError as error:
        raise InvalidProjectField(str(error)) from None


def clean_description(value: str) -> str:
    try:
        # Newlines are welcome in a description; every other control character is not.
        lines = [
            clean_text(line, "description", max_length=MAX_DESCRIPTION_LENGTH, required=False)
            for line in value.splitlines()
        ]
    except PersonalDetailError as error:
        raise InvalidProjectField(str(error)) from None
    text = "\n".join(lines).strip()
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise InvalidProjectField(f"description: at most {MAX_DESCRIPTION_LENGTH} characters")
    return text


@dataclass(frozen=True)
class Actor:
    """Who asks: an account name (None for the hub) and whether they act as an administrator."""

    name: str | None
    admin: bool


def get_project(session: Session, name: str) -> Project | None:
    return session.scalar(
        select(Project)
        .where(Project.name == name)
        .options(selectinload(Project.members).selectinload(ProjectMember.account))
    )


def load_project(session: Session, name: str) -> Project:
    check_project_name(name)
    project = get_project(session, name)
    if project is None:
        raise ProjectNotFound(f"no project {name!r}")
    return project


def role_of(project: Project, account_name: str | None) -> str | None:
    """``owner``, ``member`` or None."""
    for member in project.members:
        if member.account.name == account_name:
            return member.role
    return None


def member_names(project: Project) -> list[str]:
    return sorted(member.account.name for member in project.members)


def owners(project: Project) -> list[str]:
    return sorted(member.account.name for member in project.members if member.role == "owner")


def _account(session: Session, name: str) -> Account:
    account = get_account(session, name)
    if account is None:
        raise UnknownAccount(
            f"{AccountNotFound.for_name(name)}: the user must have logged in to the platform once"
        )
    return account


def _require_owner(project: Project, actor: Actor, what: str) -> None:
    if actor.admin or role_of(project, actor.name) == "owner":
        return
    raise ProjectForbidden(f"only owners of project {project.name!r} and administrators may {what}")


def may_see(project: Project, actor: Actor) -> bool:
    return actor.admin or role_of(project, actor.name) is not None


def create_project(
    session: Session,
    name: str,
    *,
    owner: str,
    display_name: str | None = None,
    description: str = "",
    reserved_prefix: str = "",
) -> Project:
    """A new project owned by ``owner`` (an existing account); its name may not start with ``reserved_prefix``."""
    check_project_name(name)
    check_not_reserved(name, reserved_prefix)
    shown = clean_display_name(display_name if display_name is not None else name)
    text = clean_description(description)
    account = _account(session, owner)
    if get_project(session, name) is not None:
        raise ProjectExists(f"project {name!r} already exists")
    project = Project(name=name, display_name=shown, description=text, created_at=utcnow())
    project.members.append(ProjectMember(account=account, role="owner", added_at=utcnow()))
    session.add(project)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ProjectExists(f"project {name!r} already exists") from None
    log.info("project %s created, owner %s", name, owner)
    return load_project(session, name)


def visible_projects(session: Session, actor: Actor) -> list[Project]:
    """The projects ``actor`` belongs to (all of them for administrators), by name."""
    query = select(Project).options(selectinload(Project.members).selectinload(ProjectMember.account))
    if not actor.admin:
        query = query.join(ProjectMember).join(Account).where(Account.name == actor.name)
    return list(session.scalars(query.order_by(Project.name)).unique())


def project_names_of(session: Session, account_name: str) -> list[str]:
    """The names of the projects ``account_name`` belongs to (any role), sorted."""
    return list(
        session.scalars(
            select(Project.name)
            .join(ProjectMember)
            .join(Account)
            .where(Account.name == account_name)
            .order_by(Project.name)
        )
    )


def add_member(session: Session, name: str, user: str, *, role: str, actor: Actor) -> Project:
    """Add ``user`` to the project with ``role``; owners and admins only."""
    if role not in ROLES:
        raise InvalidProjectField(f"role: must be one of {', '.join(ROLES)}")
    project = load_project(session, name)
    _require_owner(project, actor, "add members")
    account = _account(session, user)
    if role_of(project, user) is not None:
        raise AlreadyMember(f"{user!r} is already a member of project {name!r} (change the role instead)")
    project.members.append(ProjectMember(account=account, role=role, added_at=utcnow()))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadyMember(f"{user!r} is already a member of project {name!r}") from None
    log.info("project %s: %s added as %s", name, user, role)
    return load_project(session, name)


def _membership(project: Project, user: str) -> ProjectMember:
    for member in project.members:
        if member.account.name == user:
            return member
    raise MemberNotFound(f"{user[:80]!r} is not a member of project {project.name!r}")


def remove_member(session: Session, name: str, user: str, *, actor: Actor) -> Project:
    """Remove ``user``: owners and admins may remove anyone but the last owner; a member may leave."""
    project = load_project(session, name)
    if actor.name != user:
        _require_owner(project, actor, "remove other members")
    member = _membership(project, user)
    if member.role == "owner" and owners(project) == [user]:
        raise LastOwner(
            f"{user!r} is the last owner of project {name!r}: transfer ownership first, or delete the project"
        )
    project.members.remove(member)
    session.commit()
    log.info("project %s: %s removed", name, user)
    return load_project(session, name)


def set_role(session: Session, name: str, user: str, role: str, *, actor: Actor) -> Project:
    """Make ``user`` (a member) an owner or a plain member; never leaves the project without an owner."""
    if role not in ROLES:
        raise InvalidProjectField(f"role: must be one of {', '.join(ROLES)}")
    project = load_project(session, name)
    _require_owner(project, actor, "change roles")
    member = _membership(project, user)
    if member.role == "owner" and role != "owner" and owners(project) == [user]:
        raise LastOwner(f"{user!r} is the last owner of project {name!r}: make someone else an owner first")
    member.role = role
    session.commit()
    return load_project(session, name)


def transfer_ownership(session: Session, name: str, new_owner: str, *, actor: Actor) -> Project:
    """``new_owner`` becomes the project's only owner (added if not a member); the previous owners stay as members."""
    project = load_project(session, name)
    _require_owner(project, actor, "transfer ownership")
    account = _account(session, new_owner)
    found = False
    for member in project.members:
        if member.account.name == new_owner:
            member.role = "owner"
            found = True
        elif member.role == "owner":
            member.role = "member"
    if not found:
        project.members.append(ProjectMember(account=account, role="owner", added_at=utcnow()))
    session.commit()
    log.info("project %s: ownership transferred to %s", name, new_owner)
    return load_project(session, name)


def delete_project(session: Session, name: str, *, actor: Actor) -> None:
    """Delete the project and its memberships; owners and admins only."""
    project = load_project(session, name)
    _require_owner(project, actor, "delete it")
    session.delete(project)
    session.commit()
    log.info("project %s deleted", name)


def all_projects(session: Session) -> dict[str, list[str]]:
    """Every project's member names (for reconciling JupyterHub's groups), by project name."""
    projects = session.scalars(
        select(Project).options(selectinload(Project.members).selectinload(ProjectMember.account))
    )
    return {project.name: member_names(project) for project in projects}
