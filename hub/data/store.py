"""Datasets: named folders of data owned by a project, readable by the projects it grants, invisible to all others.

Rules this module guarantees:

* Dataset names follow one rule, ``DATASET_NAME_RULE``: 1-64 lower-case letters, digits, ``_`` and ``-``, starting
  with a letter or digit. No dot, slash or backslash can appear, so no name is ``..``, absolute or a path of any
  kind, whatever decoding (``%2e%2e``, ``%5c``) came before; anything else is ``InvalidDatasetName`` (400) and
  nothing is stored. Names never reach the file system: folders are named by an opaque key (``storage.py``).
* **Who sees what.** A dataset is seen read-write (``rw``) by the members of its project, read-only (``ro``) by the
  members of the projects it is granted to, and by nobody else: for anyone else it does not exist
  (``DatasetNotFound``, 404, never 403, so names cannot be probed). Administrators see every dataset (``rw``).
* **Who does what.** Members of a project create datasets in it; owners of the dataset's project (and
  administrators) delete it, grant read access to another project and revoke it. Members who may see a dataset but
  may not do the thing get ``DatasetForbidden`` (403).
* A grant is effective in the API at once and gone at once on revocation; servers get it at their next spawn
  (``mounts_for``, read by the spawner).
* Creation commits the row only once the folder exists (``storage.create_folder``); if the folder cannot be made
  the row is rolled back, and a folder made for a row that then fails to commit is removed. Deletion commits first
  and removes the folder afterwards; folders and groups whose rows are gone (a crash in between, or a deleted
  project, whose datasets the database cascades) are swept when the service starts (``sweep_orphans``).
* **Objects** (datasets of the object class on an S3-compatible endpoint, ``object_store.py``): readers list them
  and get presigned GET URLs; only callers with ``rw`` get presigned PUT URLs or delete objects (``DatasetForbidden``
  otherwise). Keys break no prefix (``InvalidObjectKey``, 400, nothing signed); a dataset of another class answers
  ``NotInObjectStore`` (409): its files are in the servers' mounts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from polartep_hub.accounts.models import Account
from polartep_hub.catalogue import Catalogue
from polartep_hub.data import metering, storage
from polartep_hub.data.models import Dataset, DatasetGrant
from polartep_hub.data.object_store import (
    MAX_PUT_BYTES,
    ObjectStore,
    ObjectStoreError,
    ObjectSummary,
    check_key_prefix,
    check_object_key,
)
from polartep_hub.data.object_store import InvalidObjectKey as ObjectKeyError
from polartep_hub.data.storage import StorageRoots
from polartep_hub.projects import store as projects
from polartep_hub.projects.models import Project, ProjectMember
from polartep_hub.service.orm import utcnow

DATASET_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
DATASET_NAME_RULE = (
    "1-64 characters of lower-case letters, digits, '_' and '-', starting with a letter or a digit"
)
MAX_TITLE_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 4000
_DATASET_NAME = re.compile(DATASET_NAME_PATTERN)

log = logging.getLogger(__name__)


class DatasetError(Exception):
    """A dataset request cannot be done; the message is safe to show (its HTTP status: ``errors.ERROR_STATUS``)."""


class InvalidDatasetName(DatasetError):
    pass


class InvalidDatasetField(DatasetError):
    pass


class DatasetNotFound(DatasetError):
    pass


class DatasetExists(DatasetError):
    pass


class DatasetForbidden(DatasetError):
    pass


class GrantNotFound(DatasetError):
    pass


class StorageUnavailable(DatasetError):
    pass


class InvalidObjectKey(DatasetError):
    pass


class NotInObjectStore(DatasetError):
    pass


class ObjectNotFound(DatasetError):
    pass


Actor = projects.Actor


def check_dataset_name(name: str) -> str:
    """``name`` if it is a valid dataset name; ``InvalidDatasetName`` (with the rule) otherwise."""
    if not isinstance(name, str) or not _DATASET_NAME.fullmatch(name):
        raise InvalidDatasetName(f"invalid dataset name {str(name)[:80]!r}: use {DATASET_NAME_RULE}")
    return name


def _clean(value: str, field: str, limit: int, *, multiline: bool = False) -> str:
    text = value.strip()
    allowed = "\n\t" if multiline else ""
    if any(ord(c) < 32 and c not in allowed for c in text) or "\x7f" in text:
        raise InvalidDatasetField(f"{field}: no control characters")
    if len(text) > limit:
        raise InvalidDatasetField(f"{field}: at most {limit} characters")
    return text


@dataclass(frozen=True)
class DatasetView:
    """A dataset as one caller sees it."""

    dataset: Dataset
    access: str  # "rw" or "ro"

    @property
    def project(self) -> str:
        return self.dataset.project.name


def _member_project_ids(session: Session, account_name: str | None):
    return (
        select(ProjectMember.project_id)
        .join(Account, Account.id == ProjectMember.account_id)
        .where(Account.name == account_name)
    )


def readable_dataset_ids(actor: Actor):
    """A SELECT of the ids of every dataset ``actor`` may read (for filtering lists and searches in SQL)."""
    if actor.admin:
        return select(Dataset.id)
    mine = _member_project_ids(None, actor.name)
    granted = select(DatasetGrant.dataset_id).where(DatasetGrant.project_id.in_(mine))
    return select(Dataset.id).where(or_(Dataset.project_id.in_(mine), Dataset.id.in_(granted)))


def access_of(session: Session, dataset: Dataset, actor: Actor) -> str | None:
    """``rw``, ``ro`` or None (the dataset does not exist for ``actor``)."""
    if actor.admin or projects.role_of(dataset.project, actor.name) is not None:
        return "rw"
    mine = set(session.scalars(_member_project_ids(session, actor.name)))
    if any(grant.project_id in mine for grant in dataset.grants):
        return "ro"
    return None


def _query():
    return select(Dataset).options(
        selectinload(Dataset.project).selectinload(Project.members).selectinload(ProjectMember.account),
        selectinload(Dataset.grants).selectinload(DatasetGrant.project),
    )


def _find(session: Session, project: str, name: str) -> Dataset | None:
    return session.scalar(
        _query()
        .join(Project, Project.id == Dataset.project_id)
        .where(Project.name == project, Dataset.name == name)
    )


def _not_found(project: str, name: str) -> DatasetNotFound:
    return DatasetNotFound(f"no dataset {name!r} in project {project!r} that you may see")


def load_dataset(session: Session, project: str, name: str, actor: Actor) -> DatasetView:
    """The dataset ``project/name`` as ``actor`` sees it; ``DatasetNotFound`` when it does not exist for them."""
    projects.check_project_name(project)
    check_dataset_name(name)
    dataset = _find(session, project, name)
    access = access_of(session, dataset, actor) if dataset is not None else None
    if dataset is None or access is None:
        raise _not_found(project, name)
    return DatasetView(dataset, access)


def visible_datasets(session: Session, actor: Actor) -> list[DatasetView]:
    """Every dataset ``actor`` may read, by project and name."""
    rows = session.scalars(
        _query()
        .join(Project, Project.id == Dataset.project_id)
        .where(Dataset.id.in_(readable_dataset_ids(actor)))
        .order_by(Project.name, Dataset.name)
    ).unique()
    views = []
    for dataset in rows:
        access = access_of(session, dataset, actor)
        if access is not None:
            views.append(DatasetView(dataset, access))
    return views


def create_dataset(
    session: Session,
    roots: StorageRoots,
    *,
    project: str,
    name: str,
    storage_class: str,
    actor: Actor,
    title: str | None = None,
    description: str = "",
    stac_collection: str = "{}",
    catalogue: Catalogue | None = None,
) -> DatasetView:
    """A new dataset of ``project`` in ``storage_class`` with its folder; members of the project and admins.
    With ``catalogue`` (the API always), refused with ``StorageQuotaExceeded`` when the project's paying owner is
    over quota in the class (``metering.check_project_write``)."""
    projects.check_project_name(project)
    check_dataset_name(name)
    if storage_class not in roots.roots:
        raise InvalidDatasetField(
            f"storage_class: {storage_class[:40]!r} is not a storage class; use one of {', '.join(roots.roots)}"
        )
    shown = _clean(title if title is not None else name, "title", MAX_TITLE_LENGTH) or name
    text = _clean(description, "description", MAX_DESCRIPTION_LENGTH, multiline=True)
    owner = projects.load_project(session, project)
    if not (actor.admin or projects.role_of(owner, actor.name) is not None):
        raise DatasetForbidden(f"only members of project {project!r} may create datasets in it")
    if _find(session, project, name) is not None:
        raise DatasetExists(f"project {project!r} already has a dataset {name!r}")
    if catalogue is not None:  # the paying owner's quota of the class (metering.py), before anything is made
        metering.check_project_write(session, catalogue, owner.id, storage_class, 0, f"dataset {name!r}")
    key = storage.new_storage_key()
    dataset = Dataset(
        project_id=owner.id,
        name=name,
        storage_class=storage_class,
        storage_key=key,
        title=shown,
        description=text,
        stac_collection=stac_collection,
        created_at=utcnow(),
    )
    session.add(dataset)
    try:
        session.flush()  # the id names the dataset's groups
    except IntegrityError:
        session.rollback()
        raise DatasetExists(f"project {project!r} already has a dataset {name!r}") from None
    try:
        storage.create_folder(roots, storage_class, key, dataset.id)
    except (OSError, storage.StorageError) as error:
        session.rollback()
        log.error("dataset %s/%s: cannot make its folder: %s", project, name, error)
        raise StorageUnavailable(
            f"the storage class {storage_class!r} cannot take new datasets right now; tell an administrator"
        ) from None
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        storage.remove_folder(roots, storage_class, key, dataset.id)
        raise DatasetExists(f"project {project!r} already has a dataset {name!r}") from None
    log.info("dataset %s/%s created in %s", project, name, storage_class)
    return load_dataset(session, project, name, actor)


def _require_owner(view: DatasetView, actor: Actor, what: str) -> None:
    if actor.admin or projects.role_of(view.dataset.project, actor.name) == "owner":
        return
    raise DatasetForbidden(f"only owners of project {view.project!r} and administrators may {what}")


def delete_dataset(session: Session, roots: StorageRoots, project: str, name: str, *, actor: Actor) -> None:
    """Delete the dataset, its grants, its items and then its folder; owners of its project and admins."""
    view = load_dataset(session, project, name, actor)
    _require_owner(view, actor, "delete its datasets")
    dataset = view.dataset
    storage_class, key, dataset_id = dataset.storage_class, dataset.storage_key, dataset.id
    session.delete(dataset)
    metering.forget_dataset(session, dataset_id)  # no longer charged to anyone, from now
    session.commit()
    try:
        storage.remove_folder(roots, storage_class, key, dataset_id)
    except (OSError, storage.StorageError) as error:
        log.error("dataset %s/%s deleted, but its folder could not be removed: %s", project, name, error)
    log.info("dataset %s/%s deleted", project, name)


def grant(session: Session, project: str, name: str, grantee: str, *, actor: Actor) -> DatasetView:
    """Give every member of ``grantee`` read access; idempotent. Owners of the dataset's project and admins."""
    view = load_dataset(session, project, name, actor)
    _require_owner(view, actor, "grant access to its datasets")
    other = projects.load_project(session, grantee)
    if other.id == view.dataset.project_id:
        raise InvalidDatasetField(f"grantee: {grantee!r} owns the dataset; grant another project")
    if not any(g.project_id == other.id for g in view.dataset.grants):
        view.dataset.grants.append(DatasetGrant(project_id=other.id, granted_at=utcnow()))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # granted by a concurrent request: the same outcome
        log.info("dataset %s/%s: read access granted to project %s", project, name, grantee)
    return load_dataset(session, project, name, actor)


def revoke(session: Session, project: str, name: str, grantee: str, *, actor: Actor) -> DatasetView:
    """Withdraw ``grantee``'s read access at once. Owners of the dataset's project and admins."""
    view = load_dataset(session, project, name, actor)
    _require_owner(view, actor, "revoke access to its datasets")
    projects.check_project_name(grantee)
    found = [g for g in view.dataset.grants if g.project.name == grantee]
    if not found:
        raise GrantNotFound(f"project {grantee!r} holds no grant on dataset {project}/{name}")
    view.dataset.grants.remove(found[0])
    session.commit()
    log.info("dataset %s/%s: read access of project %s revoked", project, name, grantee)
    return load_dataset(session, project, name, actor)


@dataclass(frozen=True)
class Mount:
    """A dataset a user's server may use: where its folder is, how, and the gid that opens it."""

    project: str
    name: str
    mode: str  # "rw" or "ro"
    path: Path
    gid: int | None
    reason: str | None = (
        None  # why a dataset of the user's own project is read-only (its class is over quota)
    )


def mounts_for(
    session: Session, roots: StorageRoots, account_name: str, catalogue: Catalogue | None = None
) -> list[Mount]:
    """The datasets ``account_name``'s next server may use: their project's (rw) and those granted to it (ro).
    Administrators get no more than their projects give them. With ``catalogue``, a dataset of their project whose
    paying owner is over the quota of its class is ``ro`` too, with the ``reason`` (``metering.py``)."""
    actor = Actor(name=account_name, admin=False)
    views = visible_datasets(session, actor)
    over = (
        metering.over_quota_dataset_ids(session, catalogue, [v.dataset.id for v in views if v.access == "rw"])
        if catalogue is not None
        else set()
    )
    mounts = []
    for view in views:
        dataset = view.dataset
        if roots.in_object_store(dataset.storage_class):
            continue  # no folder to mount: its objects are reached through presigned URLs (object_urls)
        mode, reason = view.access, None
        if dataset.id in over:
            mode = "ro"
            reason = (
                f"dataset {view.project}/{dataset.name} is mounted read-only: the {dataset.storage_class} storage "
                "of its project's paying owner is over quota; free space (or ask for a larger plan) and restart "
                "your server to write to it again"
            )
        mounts.append(
            Mount(
                project=view.project,
                name=dataset.name,
                mode=mode,
                path=roots.folder(dataset.storage_class, dataset.storage_key),
                gid=storage.dataset_gids(roots, dataset.id, mode),
                reason=reason,
            )
        )
    return mounts


def dataset_bytes(session: Session, roots: StorageRoots, *, project: str | None = None) -> dict[str, int]:
    """Bytes held by each dataset (``project/name`` -> bytes), of one project or of all; for the storage meter.
    Datasets in the object store count the objects under their prefix (``storage.StorageError`` when the store does
    not answer: a missing number must not read as zero bytes)."""
    query = select(Dataset).options(selectinload(Dataset.project))
    if project is not None:
        query = query.join(Project, Project.id == Dataset.project_id).where(Project.name == project)
    return {
        f"{d.project.name}/{d.name}": storage.dataset_bytes(roots, d.storage_class, d.storage_key)
        for d in session.scalars(query)
    }


def sweep_orphans(session: Session, roots: StorageRoots) -> list[str]:
    """Remove the folders and groups of datasets that no longer have a row (``storage.sweep_orphans``)."""
    keys = set(session.scalars(select(Dataset.storage_key)))
    ids = set(session.scalars(select(Dataset.id)))
    removed = storage.sweep_orphans(roots, keys, ids)
    if removed:
        log.info("removed %d folders and groups of datasets that no longer exist", len(removed))
    return removed


# Objects of datasets in the object store (object_store.py).


def _object_store(roots: StorageRoots, view: DatasetView) -> ObjectStore:
    dataset = view.dataset
    if not roots.in_object_store(dataset.storage_class) or roots.objects is None:
        raise NotInObjectStore(
            f"dataset {view.project}/{dataset.name} is in the {dataset.storage_class!r} class, not in the object "
            f"store: its files are in your server at datasets/{view.project}/{dataset.name}"
        )
    return roots.objects


def _object_key(key: object) -> str:
    try:
        return check_object_key(key)
    except ObjectKeyError as error:
        raise InvalidObjectKey(str(error)) from None


def _unavailable(view: DatasetView, error: Exception) -> StorageUnavailable:
    log.error("dataset %s/%s: the object store failed: %s", view.project, view.dataset.name, error)
    return StorageUnavailable(
        "the object store does not answer right now; try again or tell an administrator"
    )


def list_objects(
    session: Session,
    roots: StorageRoots,
    project: str,
    name: str,
    *,
    actor: Actor,
    prefix: str = "",
    after: str = "",
    limit: int = 1000,
) -> tuple[DatasetView, list[ObjectSummary], str | None]:
    """The dataset's objects whose keys start with ``prefix`` (after key ``after``), for anyone who may read it."""
    view = load_dataset(session, project, name, actor)
    objects = _object_store(roots, view)
    try:
        prefix = check_key_prefix(prefix)
        after = _object_key(after) if after else ""
    except ObjectKeyError as error:
        raise InvalidObjectKey(str(error)) from None
    try:
        found, next_after = objects.list_objects(view.dataset.storage_key, prefix, after, limit)
    except ObjectStoreError as error:
        raise _unavailable(view, error) from None
    return view, found, next_after


def object_url(
    session: Session,
    roots: StorageRoots,
    project: str,
    name: str,
    key: object,
    method: str,
    *,
    actor: Actor,
    content_length: int | None = None,
    catalogue: Catalogue | None = None,
) -> tuple[str, int]:
    """A presigned URL for ``method`` on one object and how many seconds it lives. GET: anyone who may read the
    dataset (an absent object is ``ObjectNotFound``); PUT: ``rw`` only, for an upload of ``content_length`` bytes
    that fits the storage quota of the dataset's paying owner (``metering.check_dataset_write``: 413 otherwise; the
    check needs ``catalogue``)."""
    view = load_dataset(session, project, name, actor)
    objects = _object_store(roots, view)
    checked = _object_key(key)
    if method == "PUT" and view.access != "rw":
        raise DatasetForbidden(f"read-only access to {project}/{name}: only members of {project!r} may write")
    if method == "PUT" and (content_length is None or not 0 <= content_length <= MAX_PUT_BYTES):
        raise InvalidDatasetField(f"bytes: the upload's size, 0 to {MAX_PUT_BYTES} (one PUT)")
    if method == "PUT":
        if catalogue is None:
            raise ValueError("a PUT URL needs the catalogue for the storage quota check")
        metering.check_dataset_write(session, catalogue, view.dataset, content_length)
    try:
        if method == "GET" and not objects.exists(view.dataset.storage_key, checked):
            raise ObjectNotFound(f"dataset {project}/{name} has no object {checked[:200]!r}")
        url = objects.presign(view.dataset.storage_key, checked, method, content_length)
    except ObjectStoreError as error:
        raise _unavailable(view, error) from None
    log.info("dataset %s/%s: %s URL issued to %s", project, name, method, actor.name or "the hub")
    return url, objects.settings.url_seconds


def delete_object(
    session: Session, roots: StorageRoots, project: str, name: str, key: object, *, actor: Actor
) -> None:
    """Delete one object of the dataset; ``rw`` only (deleting an absent object is not an error, as in S3)."""
    view = load_dataset(session, project, name, actor)
    objects = _object_store(roots, view)
    checked = _object_key(key)
    if view.access != "rw":
        raise DatasetForbidden(
            f"read-only access to {project}/{name}: only members of {project!r} may delete"
        )
    try:
        objects.delete_object(view.dataset.storage_key, checked)
    except ObjectStoreError as error:
        raise _unavailable(view, error) from None
