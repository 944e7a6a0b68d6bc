"""Datasets on the storage meter: which account a dataset is charged to, its bytes sampled with the homes, and the
quota check before every write to a dataset that the platform makes.

**Who pays for a dataset.** Datasets belong to projects, and a project has owners (``projects/store.py``: always at
least one while its accounts exist). A dataset is charged to its project's *paying owner*: of the project's owners,
the one who joined the project first (earliest ``added_at``, then the lowest account id); when no owner is left
(the only owner's account was erased), its earliest member; a project with no members is charged to nobody, and
its datasets take no writes. The rule needs no column of its own and follows the project as it changes:

* an owner who leaves, is demoted or is erased stops paying from the next sample on; the next owner in the order
  pays from then (``sample_datasets`` moves the source ``dataset:<id>``: the old payer's sample is integrated up to
  that moment and removed, the new payer's starts). What the old payer held until then stays on their month (and
  goes with their personal data when they are erased: ``storage_usage`` and ``storage_month_totals`` are erased
  with the account);
* between an erasure and the next sample (at most ``storage_sample_interval``) the dataset is charged to nobody;
* a deleted dataset stops being charged at once (``forget_dataset``, in the deletion's transaction).

**What is measured.** Each dataset's bytes (``storage.dataset_bytes``: regular files of its folder, links not
followed, or the objects under its prefix in the object store) are recorded
as the source ``dataset:<id>`` of the paying owner in the dataset's storage class, by the same ``record_sample`` as
homes, so the month's TB-months, the statement (TB-months x the class's price) and the usage answer (bytes per
class) include them, and ``check_write`` counts them against the paying owner's quota.

**Writes the platform makes** (``check_dataset_write``): creating a dataset and every write through the datasets'
API is refused (``StorageQuotaExceeded``, 413) when the paying owner's class is over quota; a server of a member
mounts the datasets of an over-quota class read-only at its next spawn (``over_quota_dataset_ids``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account
from polartep_hub.catalogue import Catalogue
from polartep_hub.data import storage
from polartep_hub.data.models import Dataset
from polartep_hub.data.storage import StorageRoots
from polartep_hub.projects.models import ProjectMember
from polartep_hub.service.orm import utcnow
from polartep_hub.usage.models import StorageUsage
from polartep_hub.usage.storage import (
    StorageQuotaExceeded,
    check_write,
    forget_source,
    quota_bytes,
    record_sample,
    stored_bytes,
)

log = logging.getLogger(__name__)

SOURCE_PREFIX = "dataset:"


def source_of(dataset_id: int) -> str:
    """The storage meter's source name of a dataset."""
    return f"{SOURCE_PREFIX}{dataset_id}"


def paying_owners(session: Session, project_ids: Iterable[int] | None = None) -> dict[int, str]:
    """project id -> the account its datasets are charged to (the module's rule); projects without members are
    absent."""
    query = (
        select(ProjectMember.project_id, Account.name)
        .join(Account, Account.id == ProjectMember.account_id)
        # Owners first, then by who joined first, then by account id: the first row of a project is its payer.
        .order_by(
            ProjectMember.project_id,
            (ProjectMember.role != "owner"),
            ProjectMember.added_at,
            ProjectMember.account_id,
        )
    )
    if project_ids is not None:
        query = query.where(ProjectMember.project_id.in_(list(project_ids)))
    payers: dict[int, str] = {}
    for project_id, name in session.execute(query):
        payers.setdefault(project_id, name)
    return payers


def paying_owner(session: Session, dataset: Dataset) -> str | None:
    """The account ``dataset`` is charged to, or None (its project has no members)."""
    return paying_owners(session, [dataset.project_id]).get(dataset.project_id)


def check_project_write(
    session: Session, catalogue: Catalogue, project_id: int, storage_class: str, bytes_: int, what: str
) -> None:
    """Refuse (``StorageQuotaExceeded``) a write of ``bytes_`` in ``storage_class`` for a dataset of project
    ``project_id`` (``what`` names it) that the paying owner's quota does not admit (``usage.storage.check_write``);
    a project with nobody to charge takes no write."""
    payer = paying_owners(session, [project_id]).get(project_id)
    account = session.scalar(select(Account).where(Account.name == payer)) if payer else None
    if account is None:
        raise StorageQuotaExceeded(
            f"The project of {what} has no member left to charge its storage to: nothing more can be written to "
            "it. Ask an administrator to add an owner to the project."
        )
    try:
        check_write(session, catalogue, account, storage_class, bytes_)
    except StorageQuotaExceeded as refused:
        raise StorageQuotaExceeded(
            f"{what[0].upper()}{what[1:]} is charged to {payer}, the paying owner of its project. {refused.message}"
        ) from None


def check_dataset_write(session: Session, catalogue: Catalogue, dataset: Dataset, bytes_: int = 0) -> None:
    """``check_project_write`` for a write of ``bytes_`` to ``dataset``."""
    check_project_write(
        session, catalogue, dataset.project_id, dataset.storage_class, bytes_, f"dataset {dataset.name!r}"
    )


def over_quota_dataset_ids(session: Session, catalogue: Catalogue, dataset_ids: Iterable[int]) -> set[int]:
    """Of ``dataset_ids``, those whose paying owner is over the quota of the dataset's class (or has none, or has
    no payer): servers mount these read-only."""
    datasets = list(session.scalars(select(Dataset).where(Dataset.id.in_(list(dataset_ids)))))
    payers = paying_owners(session, {d.project_id for d in datasets})
    accounts = {
        a.name: a for a in session.scalars(select(Account).where(Account.name.in_(set(payers.values()))))
    }
    used = {name: stored_bytes(session, name) for name in accounts}
    over = set()
    for dataset in datasets:
        account = accounts.get(payers.get(dataset.project_id, ""))
        limit = quota_bytes(catalogue, account, dataset.storage_class) if account is not None else None
        if limit is None or used[account.name].get(dataset.storage_class, 0) > limit:
            over.add(dataset.id)
    return over


def forget_dataset(session: Session, dataset_id: int, *, now: datetime | None = None) -> None:
    """The dataset is gone: its source stops being charged now (integrated until ``now``). Flushes."""
    now = now or utcnow()
    for row in list(
        session.scalars(select(StorageUsage).where(StorageUsage.source == source_of(dataset_id)))
    ):
        forget_source(session, row.account_name, row.storage_class, row.source, now=now)


def sample_datasets(session: Session, roots: StorageRoots, *, now: datetime | None = None) -> dict[str, int]:
    """Record every dataset's bytes for its paying owner now (moving sources whose payer changed, forgetting those
    of datasets that are gone); returns ``dataset:<id>`` -> bytes. Flushes; the caller commits."""
    now = now or utcnow()
    datasets = list(session.scalars(select(Dataset)))
    payers = paying_owners(session, {d.project_id for d in datasets})
    charged: dict[str, tuple[str, str]] = {}  # source -> (account, class) as now
    sizes: dict[str, int] = {}
    for dataset in datasets:
        payer = payers.get(dataset.project_id)
        if payer is None:
            continue
        source = source_of(dataset.id)
        try:
            size = storage.dataset_bytes(roots, dataset.storage_class, dataset.storage_key)
        except storage.StorageError as error:  # e.g. the object store does not answer: keep the last sample
            log.warning("dataset %s: cannot measure it: %s", source, error)
            continue
        charged[source] = (payer, dataset.storage_class)
        sizes[source] = size
    existing = session.scalars(select(StorageUsage).where(StorageUsage.source.like(f"{SOURCE_PREFIX}%")))
    for row in list(existing):
        if charged.get(row.source) != (row.account_name, row.storage_class):
            # Another payer now, or the dataset is gone: the old payer is charged up to now and no further.
            forget_source(session, row.account_name, row.storage_class, row.source, now=now)
    for source, (payer, storage_class) in charged.items():
        record_sample(session, payer, storage_class, source, sizes[source], now=now)
    return sizes
