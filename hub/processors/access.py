"""Who may see and run a processor: the one rule, used by the registry, the runs and OGC API - Processes.

Rules this module guarantees:

* **See**: administrators see every processor; others see a processor they own, a ``public`` one, or a ``projects``
  one shared with a project they are a member of. Nothing else is listed, and an unseen processor is answered as
  unknown (404), so its existence is not disclosed.
* **Run**: whoever may see a processor may run it, always on their own quota and cluster, unless it is withdrawn
  (its owner's account was erased and the processor was not handed on): then nobody starts a new run.
* **Change** (publish a new version, change visibility or shares): only its owner and administrators.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account
from polartep_hub.processors.models import Processor, ProcessorShare
from polartep_hub.projects.models import ProjectMember
from polartep_hub.projects.store import Actor


def _account_id(session: Session, name: str | None) -> int | None:
    if name is None:
        return None
    return session.scalar(select(Account.id).where(Account.name == name))


def is_owner(session: Session, processor: Processor, actor: Actor) -> bool:
    """Whether ``actor`` owns ``processor`` (a withdrawn processor has no owner)."""
    account_id = _account_id(session, actor.name)
    return account_id is not None and processor.owner_id == account_id


def shared_with(session: Session, processor: Processor, account_name: str | None) -> bool:
    """Whether ``processor`` is shared with a project that ``account_name`` is a member of."""
    account_id = _account_id(session, account_name)
    if account_id is None:
        return False
    return bool(
        session.scalar(
            select(
                exists().where(
                    ProcessorShare.processor_id == processor.id,
                    ProjectMember.project_id == ProcessorShare.project_id,
                    ProjectMember.account_id == account_id,
                )
            )
        )
    )


def may_see(session: Session, processor: Processor, actor: Actor) -> bool:
    """Whether ``actor`` may see ``processor`` (list it, read its description and versions)."""
    if actor.admin or is_owner(session, processor, actor):
        return True
    if processor.withdrawn_at is not None:
        return False
    if processor.visibility == "public":
        return actor.name is not None
    if processor.visibility == "projects":
        return shared_with(session, processor, actor.name)
    return False


def may_run(session: Session, processor: Processor, actor: Actor) -> bool:
    """Whether ``actor`` may start a run of ``processor`` (on their own quota)."""
    return processor.withdrawn_at is None and actor.name is not None and may_see(session, processor, actor)


def may_change(session: Session, processor: Processor, actor: Actor) -> bool:
    """Whether ``actor`` may publish versions of ``processor`` or change who may see it."""
    return actor.admin or is_owner(session, processor, actor)
