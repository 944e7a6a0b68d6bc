"""Keeping JupyterHub's groups in line with the platform's projects (the database is the truth).

Every project is the JupyterHub group of the same name, whose users are exactly the project's members (owners
included). The group carries the property ``polartep_project: true``, which is how the platform tells its groups
from others (e.g. groups an identity provider's claims create): only marked groups are ever deleted.

Rules this module guarantees:

* State-based and idempotent: ``sync(name)`` reads the project from the database and makes the hub's group match it
  (create, mark, add the missing users, remove the extra ones; delete the group when the project is gone).
* **Never adopts a group the platform did not create.** Only a group this service created itself (its ``POST``
  answered 201) is marked; an existing group without the mark (an identity provider's, an administrator's, one
  created between our look-up and our ``POST``) is never marked, joined or emptied: the sync reports it in
  ``conflicts`` and logs it, and a project being created with that name is refused (409) and removed again. A group
  carries roles (scopes) for its members, so adopting one would hand them to the project's members.
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

from polartep_hub.projects import store as projects
from polartep_hub.service.hub_api import HubApiError

PROJECT_PROPERTY = "polartep_project"

log = logging.getLogger(__name__)


class GroupsAPI(Protocol):
    """What the sync needs of JupyterHub (``hub_api.HubAPI`` has it; tests may pass a recording fake)."""

    def group(self, name: str) -> dict[str, Any] | None: ...
    def groups(self) -> list[dict[str, Any]]: ...
    def create_group(self, name: str) -> bool: ...
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
    conflicts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "groups_checked": self.groups_checked,
            "created": self.created,
            "deleted": self.deleted,
            "added": self.added,
            "removed": self.removed,
            "conflicts": self.conflicts,
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
            if not self.hub.create_group(name):
                # Someone else created it between our look-up and our POST: theirs, not ours.
                self._conflict(name, report)
                return
            report.created.append(name)
            # Ours (we just created it): mark it before anyone is put into it. If marking fails, remove it again,
            # or it would stay an unmarked group that no later sync may touch.
            try:
                self.hub.set_group_properties(name, {PROJECT_PROPERTY: True})
            except Exception:
                try:
                    self.hub.delete_group(name)
                except Exception:
                    log.warning("project %s: could not remove the group whose marking failed", name)
                raise
            model = {"users": [], "properties": {PROJECT_PROPERTY: True}}
        elif not is_project_group(model):
            self._conflict(name, report)
            return
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

    @staticmethod
    def _conflict(name: str, report: ReconcileReport) -> None:
        report.conflicts.append(name)
        log.warning(
            "project %s: JupyterHub has a group of that name that the platform did not create; it is left alone "
            "(rename the project, or delete that group if it is unwanted)",
            name,
        )

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
    """Mirror the committed project ``name`` into the hub: ``synced``, ``pending`` (retried later), ``conflict``
    (the hub has a group of that name the platform did not create: left alone) or ``off``."""
    if sync is None:
        return "off"
    try:
        if sync.sync(name).conflicts:
            return "conflict"
    except (HubApiError, OSError) as error:
        log.warning("project %s: hub group not updated yet (%s); the reconciler will retry", name, error)
        if reconciler is not None:
            reconciler.request()
        return "pending"
    return "synced"
