"""Keeping JupyterHub's groups in line with the platform's projects (the database is the truth).

Every project is the JupyterHub group of the same name, whose users are exactly the project's members (owners
included). The group carries the property ``polartep_project: true``, which is how the platform tells its groups
from others (e.g. groups an identity provider's claims create): only marked groups are ever deleted.

Rules this module guarantees:

* State-based and idempotent: ``sync(name)`` reads the project from the database and makes the hub's group match it
  (create, mark, add the missing users, remove the extra ones; delete the group when the project is gone).
  Running it twice, or after a crash between the database commit and the hub call, is harmless and completes
  the change, so nothing is lost.
* Callers commit first, then sync; a sync that fails (hub down) is logged and handed to the ``Reconciler``, which
  retries with backoff. ``reconcile()`` does the same for every project and every marked group; it runs at service
  start-up, after failures, every ``interval`` seconds, and on demand (``POST /api/v1/projects/reconcile``).
* One lock per service serialises syncs, so a slow reconciliation never writes a stale member list over a newer one.
* Members that have a platform account but no hub user yet are created in the hub when JupyterHub refuses to group
  users it does not know (400), then added again; this needs the service's ``admin:users`` scope, which it holds.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from . import projects
from .hub_api import HubApiError

PROJECT_PROPERTY = "polartep_project"

log = logging.getLogger(__name__)


class GroupsAPI(Protocol):
    """What the sync needs of JupyterHub (``hub_api.HubAPI`` has it; tests may pass a recording fake)."""

    def group(self, name: str) -> dict[str, Any] | None: ...
    def groups(self) -> list[dict[str, Any]]: ...
    def ensure_group(self, name: str) -> None: ...
    def set_group_properties(self, name: str, properties: dict[str, Any]) -> None: ...
    def delete_group(self, name: str) -> None: ...
    def add_group_members(self, name: str, users: list[str]) -> None: ...
    def remove_group_members(self, name: str, users: list[str]) -> None: ...
    def ensure_user(self, name: str) -> None: ...


@dataclass
class ReconcileReport:
    """What a reconciliation changed in the hub."""

    groups_checked: int = 0
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    added: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "groups_checked": self.groups_checked,
            "created": self.created,
            "deleted": self.deleted,
            "added": self.added,
            "removed": self.removed,
        }


def is_project_group(model: dict[str, Any]) -> bool:
    return bool((model.get("properties") or {}).get(PROJECT_PROPERTY))


class ProjectGroupSync:
    """Makes JupyterHub's groups match the projects in the database."""

    def __init__(self, hub: GroupsAPI, sessions: sessionmaker[Session]) -> None:
        self.hub = hub
        self.sessions = sessions
        self._lock = threading.Lock()

    def foreign_group_exists(self, name: str) -> bool:
        """True when the hub has a group ``name`` that is not a project's (so a project must not take it over)."""
        model = self.hub.group(name)
        return model is not None and not is_project_group(model)

    def _apply(self, name: str, members: list[str] | None, report: ReconcileReport) -> None:
        report.groups_checked += 1
        model = self.hub.group(name)
        if members is None:
            if model is not None and is_project_group(model):
                self.hub.delete_group(name)
                report.deleted.append(name)
            return
        if model is None:
            self.hub.ensure_group(name)
            report.created.append(name)
            model = {"users": [], "properties": {}}
        if not is_project_group(model):
            self.hub.set_group_properties(name, {**(model.get("properties") or {}), PROJECT_PROPERTY: True})
        present = set(model.get("users") or [])
        missing = sorted(set(members) - present)
        extra = sorted(present - set(members))
        if missing:
            try:
                self.hub.add_group_members(name, missing)
            except HubApiError as error:
                if error.status != 400:  # 400 is JupyterHub's "No such user": create them, then try again
                    raise
                for user in missing:
                    self.hub.ensure_user(user)
                self.hub.add_group_members(name, missing)
            report.added[name] = missing
        if extra:
            self.hub.remove_group_members(name, extra)
            report.removed[name] = extra

    def sync(self, name: str) -> ReconcileReport:
        """Make the hub's group ``name`` match the project ``name`` (or remove it if the project is gone)."""
        report = ReconcileReport()
        with self._lock:
            with self.sessions() as session:
                project = projects.get_project(session, name)
                members = projects.member_names(project) if project is not None else None
            self._apply(name, members, report)
        return report

    def reconcile(self) -> ReconcileReport:
        """Make every project's group match, and delete marked groups whose project is gone."""
        report = ReconcileReport()
        with self._lock:
            with self.sessions() as session:
                wanted = projects.all_projects(session)
            for name, members in sorted(wanted.items()):
                self._apply(name, members, report)
            for model in self.hub.groups():
                if model.get("name") not in wanted and is_project_group(model):
                    self._apply(model["name"], None, report)
        if report.created or report.deleted or report.added or report.removed:
            log.info("reconciled project groups: %s", report.as_dict())
        return report


class Reconciler:
    """A daemon thread that reconciles at start, every ``interval`` seconds, and soon after any failed sync.

    Failures back off exponentially (``first_retry`` doubling up to ``max_retry`` seconds) and never stop the thread.
    """

    def __init__(
        self,
        sync: ProjectGroupSync,
        *,
        interval: float = 600.0,
        first_retry: float = 1.0,
        max_retry: float = 60.0,
    ) -> None:
        self.sync = sync
        self.interval = interval
        self.first_retry = first_retry
        self.max_retry = max_retry
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_report: ReconcileReport | None = None
        self.last_error: str | None = None

    def start(self) -> Reconciler:
        self._thread = threading.Thread(target=self._run, name="project-group-reconciler", daemon=True)
        self._thread.start()
        return self

    def request(self) -> None:
        """Ask for a reconciliation soon (after a sync failed)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.first_retry
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.last_report = self.sync.reconcile()
                self.last_error = None
                delay = self.first_retry
                wait = self.interval
            except Exception as error:  # the hub may be down or restarting: retry, never die
                self.last_error = f"{type(error).__name__}: {str(error)[:300]}"
                log.warning("reconciling project groups failed (retry in %.0f s): %s", delay, self.last_error)
                wait, delay = delay, min(delay * 2, self.max_retry)
            self._wake.wait(wait)


def sync_after_commit(sync: ProjectGroupSync | None, reconciler: Reconciler | None, name: str) -> str:
    """Mirror the committed project ``name`` into the hub: ``synced``, ``pending`` (retried later) or ``off``."""
    if sync is None:
        return "off"
    try:
        sync.sync(name)
    except (HubApiError, OSError) as error:
        log.warning("project %s: hub group not updated yet (%s); the reconciler will retry", name, error)
        if reconciler is not None:
            reconciler.request()
        return "pending"
    return "synced"
