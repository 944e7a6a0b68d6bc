"""The processors' part of a user's personal data: the erasure step and the export's processors section.

Registered with ``accounts/personal_data.py`` when this module is imported (``registry.py`` imports it, and the
service imports the registry), so the export and the final erasure transaction always include it.

Rules this module guarantees:

* **Erasure, ``withdraw``** (the default): every processor the user owns loses its owner. A processor that nobody
  else ever ran is deleted with its versions (nothing of it is needed); one that others ran stays as a withdrawn
  entry (``withdrawn_at`` set, no owner, no shares): nobody may start a new run, and the others keep the history of
  their own runs (``access.py``).
* **Erasure, ``transfer``**: the processors the user shared (visibility ``projects`` or ``public``) pass to
  ``transfer_to`` with their versions and shares; the user's private processors are withdrawn as above (private work
  is not handed to someone else). If the receiving account no longer exists, everything is withdrawn.
* Versions the user published on processors of others keep their content but no longer name them
  (``published_by_id`` becomes NULL through its foreign key).
* **Export**: each processor row says its id, visibility, how many versions and which projects it is shared with;
  each version row names its processor. Runs of others are never in anyone's export but their invoker's.
* The notebooks' files are content-addressed and may be shared by several versions; a deleted processor's notebook
  file stays in the store until a clean-up (not done in this release) finds no version naming it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from polartep_hub.accounts import personal_data
from polartep_hub.accounts.models import Account
from polartep_hub.processors.models import Processor, ProcessorRun, ProcessorShare, ProcessorVersion
from polartep_hub.projects.models import Project
from polartep_hub.service.orm import utcnow


def _others_ran(session: Session, processor: Processor, account_id: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    ProcessorRun.version_id == ProcessorVersion.id,
                    ProcessorVersion.processor_id == processor.id,
                    ProcessorRun.invoker_id != account_id,
                )
            )
        )
    )


def _withdraw(session: Session, processor: Processor, account_id: int) -> None:
    if not _others_ran(session, processor, account_id):
        # The user's own runs go with their account (cascade) but would block deleting the versions first.
        version_ids = select(ProcessorVersion.id).where(ProcessorVersion.processor_id == processor.id)
        session.execute(delete(ProcessorRun).where(ProcessorRun.version_id.in_(version_ids)))
        session.execute(delete(ProcessorVersion).where(ProcessorVersion.processor_id == processor.id))
        session.execute(delete(ProcessorShare).where(ProcessorShare.processor_id == processor.id))
        session.delete(processor)
        return
    processor.owner_id = None
    processor.withdrawn_at = utcnow()
    processor.updated_at = processor.withdrawn_at
    processor.visibility = "private"
    session.execute(delete(ProcessorShare).where(ProcessorShare.processor_id == processor.id))


def settle_processors(session: Session, context: personal_data.ErasureContext) -> None:
    """The erasure step: withdraw or transfer the erased account's processors (see the module's rules)."""
    account_id = context.account.id
    receiver = None
    if context.processors == "transfer" and context.transfer_to:
        receiver = session.scalar(select(Account).where(Account.name == context.transfer_to))
    owned = list(session.scalars(select(Processor).where(Processor.owner_id == account_id)))
    for processor in owned:
        if receiver is not None and processor.visibility != "private":
            processor.owner_id = receiver.id
            processor.updated_at = utcnow()
        else:
            _withdraw(session, processor, account_id)
    session.flush()


def _processor_details(session: Session, row: dict[str, Any]) -> dict[str, Any]:
    versions = session.scalar(
        select(func.count()).select_from(ProcessorVersion).where(ProcessorVersion.processor_id == row["id"])
    )
    projects = list(
        session.scalars(
            select(Project.name)
            .join(ProcessorShare, ProcessorShare.project_id == Project.id)
            .where(ProcessorShare.processor_id == row["id"])
            .order_by(Project.name)
        )
    )
    return {"processor": row["name"], "versions": int(versions or 0), "shared_with_projects": projects}


def _version_details(session: Session, row: dict[str, Any]) -> dict[str, Any]:
    name = session.scalar(select(Processor.name).where(Processor.id == row["processor_id"]))
    return {"processor": name}


def register() -> None:
    """Add the erasure step and the export's details to ``accounts/personal_data.py`` (once)."""
    if settle_processors not in personal_data.ERASURE_HOOKS:
        personal_data.ERASURE_HOOKS.append(settle_processors)
    personal_data.ROW_DETAILS.setdefault("processors", _processor_details)
    personal_data.ROW_DETAILS.setdefault("processor_versions", _version_details)


register()
