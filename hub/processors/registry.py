"""The processor registry: publishing immutable versions, listing what a caller may see, sharing, usage counts.

Rules this module guarantees:

* **Publish** (``publish``) checks everything before it writes anything: the notebook (nbformat 4, at most
  ``MAX_NOTEBOOK_BYTES``), the definition (``definition.validate_definition``, with the notebook's ``parameters`` cell
  and the catalogue's profiles), the projects shared with (each must exist and have the publisher as a member, or the
  publisher is an administrator), who owns the id and the version order. A refused publish stores no row; the
  notebook file is written (content-addressed, ``notebook_store.py``) only after every check, just before the commit,
  so a file is left without a version only when the commit itself fails, and such a file is never served.
* **Immutable versions**: a published version is never changed. The same version string again, or one lower in
  semver order than the newest, is refused (``VersionConflict``, 409). Old versions stay listed, fetchable and
  runnable.
* **Consecutive sequences**: versions of one processor are numbered 1, 2, 3 ... in publishing order, never a
  duplicate or a gap, also when publishes race: on PostgreSQL the processor's row is locked for the publish
  (``SELECT ... FOR UPDATE``); on either database a lost race (a unique constraint, SQLite's busy snapshot) is
  retried from the start in a fresh transaction, and re-checks the version order.
* **Who may do what** comes from ``access.py`` only: others' processors that the caller may not see are answered as
  unknown (404); an id taken by a processor the caller cannot see is answered 409 without saying whose.
* **Visibility** is the processor's (not a version's): a publish whose definition names ``visibility`` sets it (and
  the project shares); one that does not keeps the current setting; ``change_sharing`` changes it without a version.
* **Usage** (``usage``) is for the owner and administrators only: how many runs, by how many distinct users, per
  version and per state; never anyone's inputs or results.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from polartep_hub.accounts.models import Account
from polartep_hub.processors import access, metering
from polartep_hub.processors import personal_data as _personal_data  # noqa: F401  (registers the erasure step)
from polartep_hub.processors.definition import (
    DefinitionInvalid,
    NotebookInvalid,
    notebook_parameters,
    semver_key,
    validate_definition,
)
from polartep_hub.processors.models import (
    VISIBILITIES,
    Processor,
    ProcessorRun,
    ProcessorShare,
    ProcessorVersion,
)
from polartep_hub.processors.notebook_store import NotebookStore
from polartep_hub.projects.models import Project, ProjectMember
from polartep_hub.projects.store import Actor
from polartep_hub.service.orm import utcnow

MAX_NOTEBOOK_BYTES = 10 * 1024 * 1024
_PUBLISH_ATTEMPTS = 8


class RegistryError(Exception):
    """A refused registry request; the message says what is wrong and what to do."""


class ProcessorNotFound(RegistryError):
    """No such processor (or the caller may not see it)."""


class VersionNotFound(ProcessorNotFound):
    """The processor has no such version."""


class ProcessorForbidden(RegistryError):
    """The caller may see the processor but not change it."""


class ProcessorIdTaken(RegistryError):
    """Another account's processor has this id."""


class VersionConflict(RegistryError):
    """The version is not greater than the newest published one (versions are immutable)."""


class NotebookTooLarge(RegistryError):
    """The notebook is over ``MAX_NOTEBOOK_BYTES``."""


class PublishingUnavailable(RegistryError):
    """Publishing cannot be done now (no processors folder configured, or the database stayed busy)."""


@dataclass(frozen=True)
class Published:
    """The outcome of a publish: the processor's id and the new version's sequence and version string."""

    name: str
    sequence: int
    version: str
    created: bool  # the first version of a new processor
    owner_id: int | None = None  # the processor's owner (charged for its notebooks: metering.py)


def _account(session: Session, name: str | None) -> Account | None:
    if name is None:
        return None
    return session.scalar(select(Account).where(Account.name == name))


def find(session: Session, name: str, actor: Actor) -> Processor:
    """The processor ``name`` if ``actor`` may see it; ``ProcessorNotFound`` otherwise (also when it exists)."""
    processor = session.scalar(select(Processor).where(Processor.name == name))
    if processor is None or not access.may_see(session, processor, actor):
        raise ProcessorNotFound(f"no processor {name[:64]!r} (or it is not shared with you)")
    return processor


def find_changeable(session: Session, name: str, actor: Actor) -> Processor:
    """The processor ``name`` if ``actor`` may change it (404 if unseen, 403 if seen but not theirs)."""
    processor = find(session, name, actor)
    if not access.may_change(session, processor, actor):
        raise ProcessorForbidden(f"only the owner of processor {name!r} and administrators may do this")
    return processor


def latest_version(session: Session, processor: Processor) -> ProcessorVersion | None:
    """The newest version (highest sequence) of ``processor``."""
    return session.scalar(
        select(ProcessorVersion)
        .where(ProcessorVersion.processor_id == processor.id)
        .order_by(ProcessorVersion.sequence.desc())
        .limit(1)
    )


def versions(session: Session, processor: Processor) -> list[ProcessorVersion]:
    """Every version of ``processor``, oldest first."""
    return list(
        session.scalars(
            select(ProcessorVersion)
            .where(ProcessorVersion.processor_id == processor.id)
            .order_by(ProcessorVersion.sequence)
        )
    )


def find_version(session: Session, processor: Processor, ref: str) -> ProcessorVersion:
    """A version by its sequence number (``"3"``), its version string (``"1.2.0"``) or ``"latest"``."""
    query = select(ProcessorVersion).where(ProcessorVersion.processor_id == processor.id)
    if ref == "latest":
        version = latest_version(session, processor)
    elif ref.isdigit():
        version = session.scalar(query.where(ProcessorVersion.sequence == int(ref)))
    else:
        version = session.scalar(query.where(ProcessorVersion.version == ref))
    if version is None:
        raise VersionNotFound(f"processor {processor.name!r} has no version {ref[:64]!r}")
    return version


def owner_name(session: Session, processor: Processor) -> str | None:
    """The owner's account name (None for a withdrawn or built-in processor)."""
    if processor.owner_id is None:
        return None
    return session.scalar(select(Account.name).where(Account.id == processor.owner_id))


def shared_projects(session: Session, processor: Processor) -> list[str]:
    """The names of the projects ``processor`` is shared with."""
    return list(
        session.scalars(
            select(Project.name)
            .join(ProcessorShare, ProcessorShare.project_id == Project.id)
            .where(ProcessorShare.processor_id == processor.id)
            .order_by(Project.name)
        )
    )


def visible(session: Session, actor: Actor) -> list[Processor]:
    """The processors ``actor`` may see, by id: ``access.may_see`` as one query (a list must not cost queries per
    processor; ``tests/processors/test_registry_api.py`` checks that both say the same for every case)."""
    query = select(Processor).order_by(Processor.name)
    if not actor.admin:
        if actor.name is None:
            return []
        account_id = session.scalar(select(Account.id).where(Account.name == actor.name))
        member_of = select(ProjectMember.project_id).where(ProjectMember.account_id == account_id)
        shared = exists().where(
            ProcessorShare.processor_id == Processor.id, ProcessorShare.project_id.in_(member_of)
        )
        others = and_(
            Processor.withdrawn_at.is_(None),
            or_(Processor.visibility == "public", and_(Processor.visibility == "projects", shared)),
        )
        query = query.where(or_(Processor.owner_id == account_id, others) if account_id else others)
    return list(session.scalars(query))


def newest_versions(session: Session, processors: list[Processor]) -> dict[int, ProcessorVersion]:
    """The newest version of each of ``processors`` (by processor id), in one query."""
    ids = [p.id for p in processors]
    if not ids:
        return {}
    newest = (
        select(ProcessorVersion.processor_id, func.max(ProcessorVersion.sequence).label("sequence"))
        .where(ProcessorVersion.processor_id.in_(ids))
        .group_by(ProcessorVersion.processor_id)
        .subquery()
    )
    rows = session.scalars(
        select(ProcessorVersion).join(
            newest,
            and_(
                ProcessorVersion.processor_id == newest.c.processor_id,
                ProcessorVersion.sequence == newest.c.sequence,
            ),
        )
    )
    return {v.processor_id: v for v in rows}


def owner_names(session: Session, processors: list[Processor]) -> dict[int, str]:
    """The owners' account names of ``processors`` (by account id), in one query."""
    ids = {p.owner_id for p in processors if p.owner_id is not None}
    if not ids:
        return {}
    return dict(session.execute(select(Account.id, Account.name).where(Account.id.in_(ids))).all())


def _project_ids(session: Session, names: Iterable[str], actor: Actor, account: Account | None) -> list[int]:
    """The ids of the projects to share with; each must exist and have the actor as a member (or an admin)."""
    ids, problems = [], []
    for index, name in enumerate(names):
        project = session.scalar(select(Project).where(Project.name == name))
        member = (
            project is not None
            and account is not None
            and session.scalar(
                select(ProjectMember.account_id).where(
                    ProjectMember.project_id == project.id, ProjectMember.account_id == account.id
                )
            )
            is not None
        )
        if project is None or not (member or actor.admin):
            # One answer for both, so the check discloses no project one is not in.
            problems.append(f"projects.{index}: no project {name!r} that you are a member of")
        else:
            ids.append(project.id)
    if problems:
        raise DefinitionInvalid(problems)
    return ids


def _set_sharing(session: Session, processor: Processor, visibility: str, project_ids: list[int]) -> None:
    processor.visibility = visibility
    processor.shares = [ProcessorShare(project_id=pid) for pid in project_ids]


def check_notebook(notebook: bytes) -> list[str]:
    """The names the notebook's ``parameters`` cell declares; refuses a file too large or not a notebook."""
    if len(notebook) > MAX_NOTEBOOK_BYTES:
        raise NotebookTooLarge(
            f"notebook: {len(notebook)} bytes is over the limit of {MAX_NOTEBOOK_BYTES} bytes; clear its outputs"
        )
    return list(notebook_parameters(notebook))


def publish(
    sessions: sessionmaker[Session],
    store: NotebookStore,
    *,
    actor: Actor,
    document: Any,
    notebook: bytes,
    profiles: Iterable[str],
    storage_class: str | None = None,
) -> Published:
    """Publish ``notebook`` with the definition ``document`` as a new processor or its next version;
    ``storage_class``: the class the processor's owner is charged in for the platform's copy of the notebook
    (``metering.py``, sampled in the publish's transaction; None: left to the storage sampler's next pass)."""
    if actor.name is None:
        raise ProcessorForbidden("only users publish processors (the processor needs an owner)")
    declared = check_notebook(notebook)
    definition = validate_definition(document, profiles=list(profiles), declared_parameters=declared)
    for attempt in range(_PUBLISH_ATTEMPTS):
        with sessions() as session:
            try:
                published = _publish_once(session, store, actor, document, definition, notebook)
                if storage_class is not None and published.owner_id is not None:
                    # The owner's published notebooks on the storage meter from this moment (metering.py).
                    metering.meter_owner(session, store, published.owner_id, storage_class)
                session.commit()
                return published
            except (IntegrityError, OperationalError):
                # Another publish of the same id won the race (unique sequence/version/name, or SQLite's stale
                # snapshot): start again, and see its version.
                session.rollback()
                time.sleep(0.005 * (attempt + 1))
    raise PublishingUnavailable("the registry is busy with other publishes of this processor; try again")


def _publish_once(
    session: Session,
    store: NotebookStore,
    actor: Actor,
    document: Any,
    definition: dict[str, Any],
    notebook: bytes,
) -> Published:
    name, version = definition["id"], definition["version"]
    account = _account(session, actor.name)
    if account is None:
        raise ProcessorForbidden(f"{actor.name!r} has no platform account yet; sign in to the platform first")
    processor = session.scalar(select(Processor).where(Processor.name == name).with_for_update())
    created = processor is None
    if processor is None:
        processor = Processor(name=name, owner_id=account.id, visibility="private")
        session.add(processor)
        session.flush()  # a racing publish of the same new id fails here (unique name) and is retried
        sequence = 1
    else:
        if not access.may_change(session, processor, actor):
            if access.may_see(session, processor, actor):
                raise ProcessorForbidden(
                    f"processor {name!r} is another account's; only its owner and administrators publish versions"
                )
            raise ProcessorIdTaken(f"the processor id {name!r} is taken; choose another id")
        newest = latest_version(session, processor)
        sequence = 1 if newest is None else newest.sequence + 1
        if newest is not None and semver_key(version) <= semver_key(newest.version):
            same = semver_key(version) == semver_key(newest.version)
            raise VersionConflict(
                f"version: {version} is {'already published' if same else 'lower than the newest, ' + newest.version}"
                f"; versions are immutable: publish a version greater than {newest.version}"
            )
    if created or "visibility" in document:
        project_ids = _project_ids(session, definition.get("projects", []), actor, account)
        _set_sharing(session, processor, definition["visibility"], project_ids)
    processor.updated_at = utcnow()
    sha256 = store.put(notebook)  # after every check: a refused publish leaves no file
    session.add(
        ProcessorVersion(
            processor_id=processor.id,
            sequence=sequence,
            version=version,
            notebook_sha256=sha256,
            definition=definition,
            published_by_id=account.id,
        )
    )
    session.flush()
    return Published(
        name=name, sequence=sequence, version=version, created=created, owner_id=processor.owner_id
    )


def change_sharing(
    session: Session, name: str, actor: Actor, *, visibility: str, projects: list[str]
) -> Processor:
    """Set who may see ``name``: ``private``, ``projects`` (with the projects) or ``public``. Owner or admin."""
    processor = find_changeable(session, name, actor)
    if visibility not in VISIBILITIES:
        raise DefinitionInvalid([f"visibility: must be one of {', '.join(VISIBILITIES)}"])
    if visibility == "projects" and not projects:
        raise DefinitionInvalid(["projects: is required (at least one project) with visibility projects"])
    if visibility != "projects" and projects:
        raise DefinitionInvalid(["projects: applies only with visibility projects"])
    project_ids = _project_ids(session, projects, actor, _account(session, actor.name))
    _set_sharing(session, processor, visibility, project_ids)
    processor.updated_at = utcnow()
    session.commit()
    return processor


def usage(session: Session, name: str, actor: Actor) -> dict[str, Any]:
    """How often and by how many users ``name`` ran: totals, per version and per state. Owner or admin only."""
    processor = find_changeable(session, name, actor)
    runs = (
        select(ProcessorRun.invoker_id, ProcessorRun.status, ProcessorVersion.sequence)
        .join(ProcessorVersion, ProcessorVersion.id == ProcessorRun.version_id)
        .where(ProcessorVersion.processor_id == processor.id)
        .subquery()
    )
    total, invokers = session.execute(
        select(func.count(), func.count(func.distinct(runs.c.invoker_id))).select_from(runs)
    ).one()
    by_state = dict(session.execute(select(runs.c.status, func.count()).group_by(runs.c.status)).all())
    by_version = [
        {"sequence": seq, "runs": count, "users": users}
        for seq, count, users in session.execute(
            select(runs.c.sequence, func.count(), func.count(func.distinct(runs.c.invoker_id)))
            .group_by(runs.c.sequence)
            .order_by(runs.c.sequence)
        )
    ]
    return {"runs": int(total), "users": int(invokers), "by_state": by_state, "by_version": by_version}


__all__ = [
    "MAX_NOTEBOOK_BYTES",
    "DefinitionInvalid",
    "NotebookInvalid",
    "NotebookTooLarge",
    "ProcessorForbidden",
    "ProcessorIdTaken",
    "ProcessorNotFound",
    "Published",
    "PublishingUnavailable",
    "RegistryError",
    "VersionConflict",
    "VersionNotFound",
    "change_sharing",
    "find",
    "find_version",
    "publish",
    "usage",
    "versions",
    "visible",
]
