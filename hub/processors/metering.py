"""Published processors' notebooks on the storage meter: the platform's own copy of every published version, charged
to the processor's owner.

**What is held.** Publishing keeps the notebook's bytes in the platform's content-addressed store
(``notebook_store.py``: one file per distinct content, named by its SHA-256), outside every user's home, for as long
as a version names it (versions are immutable and stay runnable). These bytes are the platform's copy, so no home
sample sees them; this module puts them on the storage meter (``usage/storage.py``).

**Rules.**

* **Whom**: a version's notebook is charged to the *owner of its processor* (who decides whether it keeps
  existing), also when an administrator published that version. A withdrawn processor (its owner erased,
  ``personal_data.py``) and the built-in ones have no owner and are charged to nobody.
* **Once per owner**: one content is counted once per owner, however many of their versions and processors name it
  (publishing the same notebook again costs nothing more). Two owners whose versions name the same content are each
  charged for it: each holds it as their own, and one's deletion or erasure does not change the other's bill.
* **How much**: the stored file's length (``NotebookStore.size``), which is the notebook's length that the publish
  was checked for; a file missing from the store counts 0 (and is logged).
* **Class**: the class of homes (``home_storage_class``): the class the publish is checked against
  (``processors/api.py``), so what is charged and what the quota counts are the same bytes.
* **When**: at each publish, in the publish's own transaction (``meter_owner``: a new sample of the owner's source
  ``processor-notebooks``, the previous bytes integrated until then), and on every storage sampler pass
  (``sample_processor_notebooks``), which also catches what changed without a publish: a processor handed over or
  withdrawn at an erasure moves from the next pass on (the erased account's own sources stop at the erasure:
  ``usage.storage.forget_account``).
* **Deletion**: versions are never deleted by their owner. An erasure deletes a processor that nobody else ran (and
  its versions); its notebook file stays in the store until a clean-up finds no version naming it (not done in this
  release), but it is charged to nobody from the erasure on.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account
from polartep_hub.processors.models import Processor, ProcessorVersion
from polartep_hub.processors.notebook_store import NotebookStore
from polartep_hub.service.orm import utcnow
from polartep_hub.usage.storage import set_source, set_source_of_every_account

log = logging.getLogger(__name__)

SOURCE = "processor-notebooks"
"""The storage meter's source of an owner's published notebooks."""


def _bytes_of(store: NotebookStore, digests: set[str]) -> int:
    total = 0
    for digest in digests:
        size = store.size(digest)
        if size is None:
            log.warning("published notebook %s is missing from the store; counted as 0 bytes", digest)
            continue
        total += size
    return total


def owned_digests(session: Session, owner_ids: list[int] | None = None) -> dict[int, set[str]]:
    """owner account id -> the distinct notebook contents (SHA-256) that the versions of their processors name;
    ``owner_ids``: only those owners (None: every owner)."""
    query = (
        select(Processor.owner_id, ProcessorVersion.notebook_sha256)
        .join(ProcessorVersion, ProcessorVersion.processor_id == Processor.id)
        .where(Processor.owner_id.is_not(None))
        .distinct()
    )
    if owner_ids is not None:
        query = query.where(Processor.owner_id.in_(owner_ids))
    digests: dict[int, set[str]] = {}
    for owner_id, digest in session.execute(query):
        digests.setdefault(owner_id, set()).add(digest)
    return digests


def meter_owner(
    session: Session, store: NotebookStore, owner_id: int, storage_class: str, *, now: datetime | None = None
) -> int:
    """Sample the published notebooks of the account ``owner_id`` now (see the module's rules); returns their
    bytes. Flushes; the caller commits (a publish: in its own transaction)."""
    now = now or utcnow()
    name = session.scalar(select(Account.name).where(Account.id == owner_id))
    if name is None:
        return 0
    size = _bytes_of(store, owned_digests(session, [owner_id]).get(owner_id, set()))
    set_source(session, name, storage_class, SOURCE, size, now=now)
    return size


def sample_processor_notebooks(
    session: Session, store: NotebookStore, storage_class: str, *, now: datetime | None = None
) -> dict[str, int]:
    """One sampler pass: every owner's published notebooks recorded now, and the source forgotten for accounts that
    no longer own any (or whose bytes are now charged in another class); returns account -> bytes. Flushes; the
    caller commits."""
    now = now or utcnow()
    digests = owned_digests(session)
    names = dict(session.execute(select(Account.id, Account.name).where(Account.id.in_(list(digests)))).all())
    sizes = {
        names[owner_id]: _bytes_of(store, found) for owner_id, found in digests.items() if owner_id in names
    }
    set_source_of_every_account(session, SOURCE, storage_class, sizes, now=now)
    return sizes
