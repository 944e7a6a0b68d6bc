"""Run records and their state machine: accepted -> running -> successful / failed / dismissed.

Rules this module guarantees:

* **Every state is committed before the step it names**: a run is ``accepted`` (inputs validated, the exact version
  fixed) before anything is asked of the gateway; ``running`` (with its cluster) before its task is submitted; a
  final state only once the worker recorded it (``run_task.py``'s ``status.json``) or the run is known to be gone.
* **A final state is final**: ``finish`` changes only a run that is not final yet (one conditional ``UPDATE``), so a
  reconciliation and a live driver that both finish a run cannot disagree, and a dismissed run stays dismissed.
* **Who sees what**: a run is its invoker's alone (administrators included only as invokers); anyone else is
  answered "no such run" (404), the processor's owner too. A processor the caller may not see is answered "no such
  processor" (404), one they may see but not run (withdrawn) 409.
* **Only validated inputs are stored**: ``inputs.validate_inputs`` fills defaults and refuses everything else; the
  names must also be assigned by the notebook's own ``parameters`` cell (papermill's inspection), the second fence
  against names that could be code.
* Listing is one indexed query per page (``ix_processor_runs_invoker_created``), never per-row work.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account
from polartep_hub.processors import access
from polartep_hub.processors.inputs import InputsInvalid, injectable_names, validate_inputs
from polartep_hub.processors.models import FINAL_RUN_STATES, Processor, ProcessorRun, ProcessorVersion
from polartep_hub.projects.store import Actor
from polartep_hub.service.orm import utcnow

DEFAULT_TIMEOUT = 3600

# What other domains publish from a run's results (dashboards/store.py registers its own): each function gives, for
# a session and a run id, links ``{"kind", "id", "title", "url"}`` that the run's API answer lists. Registered at
# import, as erasure hooks are, so this domain never imports those that build on it.
RUN_RESULT_LINKS: list[Callable[[Session, str], list[dict[str, str]]]] = []


def result_links(session: Session, run_id: str) -> list[dict[str, str]]:
    """Everything published from run ``run_id``'s results (dashboards), from every registered domain."""
    return [link for links_of in RUN_RESULT_LINKS for link in links_of(session, run_id)]


ACTIVE_STATES = ("accepted", "running")


class RunError(Exception):
    """Base of the runs' domain errors (statuses in ``service/web/errors.py``)."""


class ProcessorNotFound(RunError):
    """No such processor, or the caller may not see it (404: its existence is not disclosed)."""


class ProcessorVersionNotFound(RunError):
    """The processor has no such version (404)."""


class ProcessorNotRunnable(RunError):
    """The processor may be seen but not run now: withdrawn, or its notebook does not declare its inputs (409)."""


class RunNotFound(RunError):
    """No such run of the caller (404)."""


class RunNotCancellable(RunError):
    """The run already ended (409)."""


class RunFileUnavailable(RunError):
    """A run's file cannot be read: not written (yet), not a plain file of its owner, or not readable here (404)."""


@dataclass(frozen=True)
class RunPlan:
    """What a driver needs to execute a run (read once, in one session)."""

    run_id: str
    invoker: str
    processor: str
    version: str
    notebook_sha256: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    profile: str
    timeout_seconds: int
    status: str
    cluster_name: str | None
    token_id: str | None


def parameters_cell_names(notebook: bytes) -> set[str]:
    """The names the notebook's ``parameters`` cell assigns (papermill's own inspection of that cell)."""
    import nbformat
    from papermill.inspection import _infer_parameters

    nb = nbformat.reads(notebook.decode("utf-8"), as_version=4)
    for cell in nb.cells:  # papermill's own loader gives every cell a tags list before inspecting
        cell.metadata.setdefault("tags", [])
    return {parameter.name for parameter in _infer_parameters(nb)}


# A version's notebook never changes (content-addressed by its SHA-256), so neither do the names its parameters cell
# assigns: parsing the notebook for them was a tenth of every run submission. Bounded; cleared when full.
_PARAMETER_NAMES: dict[str, frozenset[str]] = {}
_PARAMETER_NAMES_KEPT = 256


def version_parameter_names(notebook_sha256: str, notebook: bytes) -> frozenset[str]:
    """``parameters_cell_names`` of the stored notebook ``notebook_sha256`` (whose content is ``notebook``), parsed
    once per process."""
    names = _PARAMETER_NAMES.get(notebook_sha256)
    if names is None:
        names = frozenset(parameters_cell_names(notebook))
        if len(_PARAMETER_NAMES) >= _PARAMETER_NAMES_KEPT:
            _PARAMETER_NAMES.clear()
        _PARAMETER_NAMES[notebook_sha256] = names
    return names


def _account_id(session: Session, name: str) -> int | None:
    return session.scalar(select(Account.id).where(Account.name == name))


def find_version(session: Session, name: str, actor: Actor, version: str | int | None) -> ProcessorVersion:
    """The version to run: by semver or sequence, else the latest; refuses what ``actor`` may not see or run."""
    processor = session.scalar(select(Processor).where(Processor.name == name))
    if processor is None or not access.may_see(session, processor, actor):
        raise ProcessorNotFound(f"no processor {name!r}")
    if not access.may_run(session, processor, actor):
        raise ProcessorNotRunnable(f"processor {name!r} was withdrawn and cannot be run")
    query = select(ProcessorVersion).where(ProcessorVersion.processor_id == processor.id)
    if version is None:
        query = query.order_by(ProcessorVersion.sequence.desc()).limit(1)
    elif isinstance(version, int):
        query = query.where(ProcessorVersion.sequence == version)
    else:
        query = query.where(ProcessorVersion.version == version)
    found = session.scalar(query)
    if found is None:
        raise ProcessorVersionNotFound(f"processor {name!r} has no version {version!r}")
    return found


def accept_run(
    session: Session,
    *,
    processor_name: str,
    actor: Actor,
    given: dict[str, Any],
    version: str | int | None,
    notebook: bytes,
    version_row: ProcessorVersion | None = None,
) -> ProcessorRun:
    """Validate and store a new ``accepted`` run of ``actor`` (committed); refusals store nothing."""
    if actor.name is None:
        raise ProcessorNotRunnable("only users run processors (on their own quota)")
    row = version_row or find_version(session, processor_name, actor, version)
    definition = row.definition
    values = validate_inputs(definition, given)
    undeclared = injectable_names(set(version_parameter_names(row.notebook_sha256, notebook)), values)
    if undeclared:
        raise InputsInvalid(
            {
                name: "is not assigned in the notebook's parameters cell; it is never injected"
                for name in undeclared
            }
        )
    invoker_id = _account_id(session, actor.name)
    if invoker_id is None:
        raise ProcessorNotRunnable(f"{actor.name!r} has no account")
    now = utcnow()
    run = ProcessorRun(
        id=str(uuid.uuid4()),
        version_id=row.id,
        invoker_id=invoker_id,
        status="accepted",
        inputs=values,
        message="",
        created_at=now,
        updated_at=now,
        timeout_seconds=int(definition.get("timeout") or DEFAULT_TIMEOUT),
    )
    session.add(run)
    session.commit()
    return run


def plan_of(session: Session, run_id: str) -> RunPlan | None:
    """Everything a driver needs about run ``run_id`` (None if there is no such run)."""
    row = session.execute(
        select(ProcessorRun, ProcessorVersion, Processor.name, Account.name)
        .join(ProcessorVersion, ProcessorVersion.id == ProcessorRun.version_id)
        .join(Processor, Processor.id == ProcessorVersion.processor_id)
        .join(Account, Account.id == ProcessorRun.invoker_id)
        .where(ProcessorRun.id == run_id)
    ).first()
    if row is None:
        return None
    run, version, processor_name, invoker = row
    definition = version.definition
    return RunPlan(
        run_id=run.id,
        invoker=invoker,
        processor=processor_name,
        version=version.version,
        notebook_sha256=version.notebook_sha256,
        inputs=dict(run.inputs),
        outputs=dict(definition.get("outputs") or {}),
        profile=str(definition.get("profile") or "interactive"),
        timeout_seconds=run.timeout_seconds,
        status=run.status,
        cluster_name=run.cluster_name,
        token_id=run.token_id,
    )


def set_running(session: Session, run_id: str, cluster_name: str) -> bool:
    """``accepted`` -> ``running`` on ``cluster_name`` (committed); False if the run is no longer accepted (e.g.
    dismissed meanwhile), True if it is running now (also when it already was: a reconciliation)."""
    now = utcnow()
    changed = session.execute(
        update(ProcessorRun)
        .where(ProcessorRun.id == run_id, ProcessorRun.status.in_(ACTIVE_STATES))
        .values(
            status="running",
            cluster_name=cluster_name,
            started_at=func.coalesce(ProcessorRun.started_at, now),
            updated_at=now,
        )  # fmt: skip
    ).rowcount
    session.commit()
    return bool(changed)


def set_token_id(session: Session, run_id: str, token_id: str | None) -> None:
    """Record (or clear) the id of the run's short-lived hub token, so it is revoked even after a crash."""
    session.execute(update(ProcessorRun).where(ProcessorRun.id == run_id).values(token_id=token_id))
    session.commit()


def set_progress(session: Session, run_id: str, cells_done: int, cells_total: int) -> None:
    session.execute(
        update(ProcessorRun)
        .where(ProcessorRun.id == run_id, ProcessorRun.status == "running")
        .values(cells_done=cells_done, cells_total=cells_total, updated_at=utcnow())
    )
    session.commit()


def finish(
    session: Session,
    run_id: str,
    status: str,
    message: str,
    results: dict[str, Any] | None = None,
    *,
    cells_done: int | None = None,
    cells_total: int | None = None,
) -> bool:
    """Give a run its final state unless it has one; True if this call did (committed)."""
    if status not in FINAL_RUN_STATES:
        raise ValueError(f"not a final state: {status}")
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "message": message[:4000],
        "finished_at": now,
        "updated_at": now,
    }
    if results is not None:
        values["results"] = results
    if cells_done is not None:
        values["cells_done"] = cells_done
    if cells_total is not None:
        values["cells_total"] = cells_total
    changed = session.execute(
        update(ProcessorRun)
        .where(ProcessorRun.id == run_id, ProcessorRun.status.not_in(FINAL_RUN_STATES))
        .values(**values)
    ).rowcount
    session.commit()
    return bool(changed)


def set_message(session: Session, run_id: str, message: str) -> None:
    session.execute(
        update(ProcessorRun)
        .where(ProcessorRun.id == run_id, ProcessorRun.status.not_in(FINAL_RUN_STATES))
        .values(message=message[:4000], updated_at=utcnow())
    )
    session.commit()


def run_of(session: Session, run_id: str, actor: Actor) -> tuple[ProcessorRun, str, str]:
    """The caller's own run with its processor's name and version; ``RunNotFound`` for anyone else."""
    if actor.name is None:
        raise RunNotFound(f"no run {run_id!r}")
    row = session.execute(
        select(ProcessorRun, Processor.name, ProcessorVersion.version)
        .join(ProcessorVersion, ProcessorVersion.id == ProcessorRun.version_id)
        .join(Processor, Processor.id == ProcessorVersion.processor_id)
        .join(Account, Account.id == ProcessorRun.invoker_id)
        .where(ProcessorRun.id == run_id, Account.name == actor.name)
    ).first()
    if row is None:
        raise RunNotFound(f"no run {run_id!r}")
    return row[0], row[1], row[2]


def list_runs(
    session: Session, actor: Actor, *, limit: int, offset: int, processor: str | None = None
) -> list[tuple[ProcessorRun, str, str]]:
    """The caller's runs, newest first, one page (one indexed query)."""
    if actor.name is None:
        return []
    invoker_id = _account_id(session, actor.name)
    if invoker_id is None:
        return []
    query = (
        select(ProcessorRun, Processor.name, ProcessorVersion.version)
        .join(ProcessorVersion, ProcessorVersion.id == ProcessorRun.version_id)
        .join(Processor, Processor.id == ProcessorVersion.processor_id)
        .where(ProcessorRun.invoker_id == invoker_id)
    )
    if processor is not None:
        query = query.where(Processor.name == processor)
    query = query.order_by(ProcessorRun.created_at.desc(), ProcessorRun.id.desc()).limit(limit).offset(offset)
    return [(row[0], row[1], row[2]) for row in session.execute(query)]


def count_runs(session: Session, actor: Actor) -> int:
    invoker_id = _account_id(session, actor.name) if actor.name else None
    if invoker_id is None:
        return 0
    return session.scalar(select(func.count()).where(ProcessorRun.invoker_id == invoker_id)) or 0


def active_run_ids(session: Session) -> list[str]:
    """Runs that are not final (reconciliation's work list; the status index)."""
    return list(session.scalars(select(ProcessorRun.id).where(ProcessorRun.status.in_(ACTIVE_STATES))))
