"""Dashboards on the storage meter: the frozen notebooks and files of every dashboard version, charged to the
dashboard's owner.

**What is held.** Publishing a dashboard (or a new version of one) freezes the notebook, and for a dashboard made
from a processor run the run's output files, in the platform database (``dashboard_versions``,
``dashboard_files``): the platform's own copies, outside the owner's home, kept until the dashboard is deleted. No
home sample sees them; this module puts them on the storage meter (``usage/storage.py``).

**Rules.**

* **Whom**: the dashboard's owner (only the owner publishes to it and deletes it).
* **How much**: every stored copy, as stored: each version's notebook (``dashboard_versions.size``, the frozen
  bytes) and each file frozen with a version (``dashboard_files.size``). The same notebook frozen in two dashboards
  is two rows, so it is charged twice; the same bytes again in one dashboard are one version, charged once. The run
  folder a dashboard's files were copied from stays in the owner's home and is charged there until they delete it.
* **Class**: the class of homes (``home_storage_class``): the class the publish is checked against
  (``dashboards/api.py``), so what is charged and what the quota counts are the same bytes.
* **When**: in the same transaction as every change (``store.publish``, ``store.add_version``, ``store.delete``:
  ``meter_owner`` records the owner's new total as the source ``dashboards``, the previous one integrated until
  then), and on every storage sampler pass (``sample_dashboards``).
* **Deletion** stops the charge at once (the owner's next total leaves the dashboard out; no dashboards left: the
  source is forgotten). **Erasure** deletes the dashboards and stops every source of the account at that moment
  (``usage.storage.forget_account``); what was held until then stays on the month's statement under the pseudonym.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account
from polartep_hub.dashboards.models import Dashboard, DashboardFile, DashboardVersion
from polartep_hub.service.orm import utcnow
from polartep_hub.usage.storage import set_source, set_source_of_every_account

SOURCE = "dashboards"
"""The storage meter's source of an owner's dashboards."""


def owner_bytes(session: Session, owner_ids: list[int] | None = None) -> dict[int, int]:
    """owner account id -> bytes of their dashboards' frozen notebooks and files (owners with none are absent);
    ``owner_ids``: only those owners (None: every owner). Summed in the database: no content is loaded."""
    totals: dict[int, int] = {}
    for model in (DashboardVersion, DashboardFile):
        query = (
            select(Dashboard.owner_id, func.sum(model.size))
            .join(Dashboard, Dashboard.id == model.dashboard_id)
            .group_by(Dashboard.owner_id)
        )
        if owner_ids is not None:
            query = query.where(Dashboard.owner_id.in_(owner_ids))
        for owner_id, size in session.execute(query):
            totals[owner_id] = totals.get(owner_id, 0) + int(size or 0)
    return totals


def meter_owner(session: Session, owner: Account, storage_class: str, *, now: datetime | None = None) -> int:
    """Sample ``owner``'s dashboards now (call it after the change, before the commit); returns their bytes.
    Flushes; the caller commits."""
    session.flush()  # the change being committed counts
    size = owner_bytes(session, [owner.id]).get(owner.id, 0)
    set_source(session, owner.name, storage_class, SOURCE, size, now=now or utcnow())
    return size


def sample_dashboards(session: Session, storage_class: str, *, now: datetime | None = None) -> dict[str, int]:
    """One sampler pass: every owner's dashboards recorded now, and the source forgotten for accounts that have none
    left (or whose bytes are now charged in another class); returns account -> bytes. Flushes; the caller
    commits."""
    now = now or utcnow()
    totals = owner_bytes(session)
    names = dict(session.execute(select(Account.id, Account.name).where(Account.id.in_(list(totals)))).all())
    sizes = {names[owner_id]: size for owner_id, size in totals.items() if owner_id in names}
    set_source_of_every_account(session, SOURCE, storage_class, sizes, now=now)
    return sizes
