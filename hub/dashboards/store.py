"""Dashboards in the platform database: publish (freeze a notebook as a version), look up, list, delete.

Rules this module guarantees:

* A published notebook is stored exactly as given (its bytes) and addressed by their SHA-256; a version never
  changes. Only a JSON object with a ``cells`` list (nbformat 4) at most ``MAX_NOTEBOOK_BYTES`` long is accepted;
  anything else is ``InvalidDashboard`` (400) naming what to fix, and nothing is stored.
* Titles are 1-200 characters (not only white space), descriptions at most 2000; ``InvalidDashboard`` otherwise.
* The number of dashboards an owner has is bounded by ``hosting.hosting_allowance``; publishing past it is
  ``DashboardLimit`` (409), saying the limit and where it comes from. The check and the insert are one transaction
  under a row lock of the owner's account, so two publishes at once cannot both take the last place.
* Hosted apps (``kind`` panel or web) are dashboards too, with the same allowance, sharing and life cycle: their
  files are frozen as a version with a manifest (``freeze_app``); file names are plain relative paths (no ``..``,
  no absolute path, no leading dot), and the entry point must name one of the app's own files, so a runner of the
  platform's runs only the app's own code (``InvalidDashboard``, 400, otherwise; nothing stored).
* Only the owner (or an administrator) reads, changes or deletes a dashboard; anyone else is told it does not
  exist (``DashboardNotFound``, 404), so ids cannot be probed.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete as sa_delete
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account
from polartep_hub.accounts.personal_data import ERASURE_HOOKS
from polartep_hub.dashboards import metering
from polartep_hub.dashboards.hosting import HostingAllowance
from polartep_hub.dashboards.models import Dashboard, DashboardFile, DashboardVersion
from polartep_hub.processors.runs import RUN_RESULT_LINKS
from polartep_hub.service.orm import utcnow

MAX_NOTEBOOK_BYTES = 10 * 1024 * 1024
"""A notebook with its plots' outputs (the thumbnail is its first PNG) fits, as a processor's notebook does
(``processors/registry.py``); the publishing routes accept bodies this large (``NOTEBOOK_BODY_BYTES``)."""
NOTEBOOK_BODY_BYTES = MAX_NOTEBOOK_BYTES + 1024 * 1024
"""The body limit of the routes that carry a notebook (``dashboards/api.py``'s ``LARGE_BODY_PATHS``): the notebook
plus title, description and the JSON around them; other routes keep the service's 64 KiB."""

MAX_FILES = 20
MAX_FILES_BYTES = 20 * 1024 * 1024
"""A run's output files frozen with a dashboard version: at most this many, this many bytes together."""
_FILE_PATH = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}/){0,3}[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
"""Relative paths of frozen files: up to four plain segments, no ``..``, no leading dot or slash."""

MAX_TITLE = 200
MAX_DESCRIPTION = 2000
SERVER_PREFIX = "dash-"
DASHBOARD_ID_PATTERN = r"[0-9a-f]{10}"
_ID = re.compile(DASHBOARD_ID_PATTERN)


class DashboardError(Exception):
    """Base of the dashboards' domain errors (statuses in ``service/web/errors.py``)."""


class InvalidDashboard(DashboardError):
    """The notebook, title or description breaks a rule (400)."""


class NotebookTooLarge(DashboardError):
    """The notebook is larger than ``MAX_NOTEBOOK_BYTES`` (413)."""


class DashboardNotFound(DashboardError):
    """No such dashboard, or not the caller's (404)."""


class DashboardLimit(DashboardError):
    """The owner has as many dashboards as the hosting allowance permits (409)."""


@dataclass(frozen=True)
class Actor:
    """Who asks: an account name (None for the hub) and whether they administer the platform."""

    name: str | None
    admin: bool = False


def server_name(dashboard_id: str) -> str:
    """The JupyterHub named server that serves the dashboard (stable: part of its URL)."""
    return f"{SERVER_PREFIX}{dashboard_id}"


def dashboard_id_of_server(name: str) -> str | None:
    """The dashboard id a server name stands for; None for a server that is not a dashboard's."""
    if not name.startswith(SERVER_PREFIX):
        return None
    candidate = name[len(SERVER_PREFIX) :]
    return candidate if _ID.fullmatch(candidate) else ""


def check_title(title: str) -> str:
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise InvalidDashboard(f"title: 1-{MAX_TITLE} characters, not only white space")
    return title


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidDashboard(f"description: at most {MAX_DESCRIPTION} characters")
    return description


def freeze_notebook(notebook: object) -> tuple[bytes, str]:
    """The notebook's canonical bytes and their SHA-256; ``InvalidDashboard`` when it is not a notebook."""
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise InvalidDashboard("notebook: a Jupyter notebook (a JSON object with a 'cells' list, nbformat 4)")
    if notebook.get("nbformat") != 4:
        raise InvalidDashboard("notebook: nbformat must be 4 (save it with JupyterLab 3 or later)")
    content = json.dumps(notebook, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    if len(content) > MAX_NOTEBOOK_BYTES:
        raise NotebookTooLarge(
            f"notebook: {len(content)} bytes; at most {MAX_NOTEBOOK_BYTES} (clear large outputs: Voila computes "
            "them again on every visit)"
        )
    return content, hashlib.sha256(content).hexdigest()


def count_owned(session: Session, account: Account) -> int:
    return (
        session.scalar(select(func.count()).select_from(Dashboard).where(Dashboard.owner_id == account.id))
        or 0
    )


def publish(
    session: Session,
    owner: Account,
    allowance: HostingAllowance,
    *,
    title: str,
    description: str,
    notebook: object,
    files: dict[str, bytes] | None = None,
    source_run_id: str | None = None,
    storage_class: str | None = None,
) -> Dashboard:
    """Freeze ``notebook`` (and ``files``, relative path -> bytes, beside it) as the first version of a new
    dashboard of ``owner`` and commit; ``source_run_id``: the processor run it shows the results of;
    ``storage_class``: the class the owner is charged in for the frozen bytes (``metering.py``, sampled in this
    transaction; None: left to the storage sampler's next pass)."""
    title = check_title(title)
    description = check_description(description)
    content, digest = freeze_notebook(notebook)
    files = check_files(files or {})
    return _create(
        session,
        owner,
        allowance,
        title=title,
        description=description,
        kind="voila",
        content=content,
        digest=digest,
        files=files,
        source_run_id=source_run_id,
        storage_class=storage_class,
    )


def publish_app(
    session: Session,
    owner: Account,
    allowance: HostingAllowance,
    *,
    title: str,
    description: str,
    kind: str,
    entry: str,
    runner: str | None,
    files: dict[str, bytes],
    storage_class: str | None = None,
) -> Dashboard:
    """Freeze an app's ``files`` (relative path -> bytes) with its manifest as the first version of a new hosted app
    of ``owner`` (a dashboard of ``kind`` panel or web, counted against the same allowance) and commit;
    ``storage_class`` as for ``publish``."""
    title = check_title(title)
    description = check_description(description)
    content, digest, files = freeze_app(kind, entry, runner, files)
    return _create(
        session,
        owner,
        allowance,
        title=title,
        description=description,
        kind=kind,
        content=content,
        digest=digest,
        files=files,
        source_run_id=None,
        storage_class=storage_class,
    )


def _create(
    session: Session,
    owner: Account,
    allowance: HostingAllowance,
    *,
    title: str,
    description: str,
    kind: str,
    content: bytes,
    digest: str,
    files: dict[str, bytes],
    source_run_id: str | None,
    storage_class: str | None,
) -> Dashboard:
    """Insert a new dashboard with its first version (checked input), within the owner's allowance, and commit;
    ``storage_class`` as for ``publish``."""
    # The owner's row, locked: two publishes at once are counted one after the other (PostgreSQL; SQLite
    # serialises writers anyway).
    session.execute(select(Account.id).where(Account.id == owner.id).with_for_update())
    owned = count_owned(session, owner)
    if owned >= allowance.limit:
        session.rollback()
        if allowance.limit == 0:
            raise DashboardLimit(
                "your plan allows no dashboard (it allows no environment); ask an administrator"
            )
        raise DashboardLimit(
            f"you have {owned} dashboard(s), the most your {allowance.source} allows ({allowance.limit}); "
            "delete one, or take a hosting subscription"
        )
    while True:
        dashboard_id = secrets.token_hex(5)
        if session.get(Dashboard, dashboard_id) is None:
            break
    now = utcnow()
    dashboard = Dashboard(
        id=dashboard_id,
        owner_id=owner.id,
        title=title,
        description=description,
        current_sha256=digest,
        source_run_id=source_run_id,
        kind=kind,
        created_at=now,
        updated_at=now,
    )
    session.add(dashboard)
    session.add(
        DashboardVersion(dashboard_id=dashboard_id, sha256=digest, notebook=content, size=len(content))
    )
    _add_files(session, dashboard_id, digest, files)
    if storage_class is not None:
        metering.meter_owner(session, owner, storage_class)
    session.commit()
    return dashboard


def _add_files(session: Session, dashboard_id: str, digest: str, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        if session.get(DashboardFile, (dashboard_id, digest, path)) is None:
            session.add(
                DashboardFile(
                    dashboard_id=dashboard_id, version_sha256=digest, path=path, content=data, size=len(data)
                )
            )


def check_files(files: dict[str, bytes], limit: int = MAX_FILES_BYTES) -> dict[str, bytes]:
    """The files to freeze beside a notebook (or an app's), checked: plain relative paths, bounded number and size
    (``limit`` bytes together)."""
    if len(files) > MAX_FILES:
        raise InvalidDashboard(f"files: {len(files)}; at most {MAX_FILES}")
    total = sum(len(data) for data in files.values())
    if total > limit:
        raise NotebookTooLarge(f"files: {total} bytes together; at most {limit}")
    for path in files:
        if not _FILE_PATH.fullmatch(path) or path == NOTEBOOK_FILE_NAME:
            raise InvalidDashboard(f"files: {path[:120]!r} is not a plain relative path")
    return files


NOTEBOOK_FILE_NAME = "dashboard.ipynb"  # the notebook's own name beside its files (dashboards/serve.py)

KINDS = ("voila", "panel", "web")
"""What serves a dashboard: Voila (a notebook), or a hosted app: ``panel serve`` or a web runner (dashboards/serve.py)."""
APP_KINDS = ("panel", "web")
WEB_RUNNERS = ("asgi", "wsgi", "static")
"""How a web app is run: uvicorn with an ASGI or a WSGI callable, or the platform's static file server."""
MAX_APP_BYTES = 8 * 1024 * 1024
"""An app's files together (sent base64-encoded in one request of at most ``NOTEBOOK_BODY_BYTES``)."""
_MODULE_ENTRY = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]{0,99}(?:\.[A-Za-z_][A-Za-z0-9_]{0,99}){0,3}):([A-Za-z_][A-Za-z0-9_]{0,99})"
)
"""A web app's entry point: ``package.module:attribute``, plain Python identifiers only."""


def freeze_app(
    kind: str, entry: str, runner: str | None, files: dict[str, bytes]
) -> tuple[bytes, str, dict[str, bytes]]:
    """An app's manifest (canonical JSON: kind, entry, runner, each file's SHA-256), its SHA-256 (the version) and
    the checked files; ``InvalidDashboard`` naming what to fix when a rule is broken, so nothing is stored.

    The entry point is data the platform's runner puts in its own fixed command, never a command: a Panel app's is
    one of its ``.py`` or ``.ipynb`` files; a web app's is ``module:attribute`` of one of its files (``asgi``,
    ``wsgi``) or its ``.html`` index page (``static``).
    """
    if kind not in APP_KINDS:
        raise InvalidDashboard(f"kind: one of {', '.join(APP_KINDS)} for an app ({kind[:20]!r} given)")
    if not files:
        raise InvalidDashboard("app.files: give the app's files (relative path -> base64 content)")
    files = check_files(files, limit=MAX_APP_BYTES)
    if kind == "panel":
        if runner is not None:
            raise InvalidDashboard("app.runner: a Panel app has no runner to choose (panel serve runs it)")
        if entry not in files or not entry.endswith((".py", ".ipynb")):
            raise InvalidDashboard(f"app.entry: {entry[:120]!r} must be one of the app's .py or .ipynb files")
    else:
        runner = runner or "asgi"
        if runner not in WEB_RUNNERS:
            raise InvalidDashboard(f"app.runner: one of {', '.join(WEB_RUNNERS)}")
        if runner == "static":
            if entry not in files or not entry.endswith(".html"):
                raise InvalidDashboard(f"app.entry: {entry[:120]!r} must be one of the site's .html files")
        else:
            match = _MODULE_ENTRY.fullmatch(entry)
            module = match.group(1).replace(".", "/") if match else None
            if module is None or not ({f"{module}.py", f"{module}/__init__.py"} & files.keys()):
                raise InvalidDashboard(
                    f"app.entry: {entry[:120]!r} must be module:attribute of one of the app's own .py files "
                    "(for example app:app for app.py)"
                )
    manifest = {
        "app": kind,
        "entry": entry,
        "runner": runner,
        "files": {path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())},
    }
    content = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return content, hashlib.sha256(content).hexdigest(), files


def add_app_version(
    session: Session,
    dashboard: Dashboard,
    entry: str,
    runner: str | None,
    files: dict[str, bytes],
    *,
    storage_class: str | None = None,
) -> DashboardVersion:
    """Freeze an app's files as its current version (the same files again: the same version) and commit;
    ``storage_class`` as for ``publish``."""
    content, digest, files = freeze_app(dashboard.kind, entry, runner, files)
    version = session.get(DashboardVersion, (dashboard.id, digest))
    if version is None:
        version = DashboardVersion(
            dashboard_id=dashboard.id, sha256=digest, notebook=content, size=len(content)
        )
        session.add(version)
        _add_files(session, dashboard.id, digest, files)
    dashboard.current_sha256 = digest
    dashboard.updated_at = utcnow()
    if storage_class is not None:
        metering.meter_owner(session, dashboard.owner, storage_class)
    session.commit()
    return version


def version_files(session: Session, dashboard: Dashboard, sha256: str) -> list[DashboardFile]:
    """The files frozen with one version (without loading their content twice), by path."""
    query = (
        select(DashboardFile)
        .where(DashboardFile.dashboard_id == dashboard.id, DashboardFile.version_sha256 == sha256)
        .order_by(DashboardFile.path)
    )
    return list(session.scalars(query))


def version_file(session: Session, dashboard: Dashboard, sha256: str, path: str) -> DashboardFile:
    found = session.get(DashboardFile, (dashboard.id, sha256, path))
    if found is None:
        raise DashboardNotFound(f"dashboard {dashboard.id!r} has no file {path[:120]!r} in that version")
    return found


def from_run(session: Session, run_id: str) -> list[Dashboard]:
    """The dashboards published from processor run ``run_id``, oldest first."""
    query = select(Dashboard).where(Dashboard.source_run_id == run_id).order_by(Dashboard.created_at)
    return list(session.scalars(query))


def add_version(
    session: Session, dashboard: Dashboard, notebook: object, *, storage_class: str | None = None
) -> DashboardVersion:
    """Freeze ``notebook`` as the dashboard's current version (the same bytes again: the same version) and commit;
    ``storage_class`` as for ``publish``."""
    if dashboard.kind != "voila":
        raise InvalidDashboard(f"dashboard {dashboard.id} is a {dashboard.kind} app: give app, not notebook")
    content, digest = freeze_notebook(notebook)
    version = session.get(DashboardVersion, (dashboard.id, digest))
    if version is None:
        version = DashboardVersion(
            dashboard_id=dashboard.id, sha256=digest, notebook=content, size=len(content)
        )
        session.add(version)
    dashboard.current_sha256 = digest
    dashboard.updated_at = utcnow()
    if storage_class is not None:
        metering.meter_owner(session, dashboard.owner, storage_class)
    session.commit()
    return version


def get_dashboard(session: Session, dashboard_id: str, actor: Actor) -> Dashboard:
    """The dashboard if ``actor`` owns it (or administers, or is the hub); ``DashboardNotFound`` otherwise."""
    dashboard = session.get(Dashboard, dashboard_id) if _ID.fullmatch(dashboard_id) else None
    if dashboard is None or not (actor.admin or dashboard.owner.name == actor.name):
        raise DashboardNotFound(f"no dashboard {dashboard_id!r} of yours")
    return dashboard


def owned_by(session: Session, owner: str) -> list[Dashboard]:
    """The dashboards of the account ``owner``, newest first."""
    query = (
        select(Dashboard)
        .join(Account, Dashboard.owner_id == Account.id)
        .where(Account.name == owner)
        .order_by(Dashboard.created_at.desc(), Dashboard.id)
    )
    return list(session.scalars(query))


def visible_to(session: Session, name: str, shared_servers: list[dict]) -> list[tuple[Dashboard, str]]:
    """The dashboards ``name`` may open, as ``(dashboard, "own" | "shared")``: their own, then those whose servers
    JupyterHub says are shared with them (``shared_servers``: ``{"user", "name"}``), newest first."""
    found = [(dashboard, "own") for dashboard in owned_by(session, name)]
    seen = {dashboard.id for dashboard, _ in found}
    wanted = {}
    for server in shared_servers:
        dashboard_id = dashboard_id_of_server(server.get("name") or "")
        if dashboard_id and dashboard_id not in seen:
            wanted[dashboard_id] = server.get("user")
    if wanted:
        rows = session.scalars(select(Dashboard).where(Dashboard.id.in_(list(wanted))))
        shared = [d for d in rows if d.owner.name == wanted[d.id]]
        shared.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        found += [(dashboard, "shared") for dashboard in shared]
    return found


def thumbnail(notebook: bytes) -> bytes | None:
    """The first PNG output of the frozen notebook (the dashboard's thumbnail), or None."""
    import base64

    try:
        cells = json.loads(notebook).get("cells", [])
        for cell in cells:
            for output in cell.get("outputs") or []:
                data = (output.get("data") or {}).get("image/png")
                if data:
                    return base64.b64decode("".join(data) if isinstance(data, list) else data)
    except (ValueError, AttributeError, TypeError):
        return None
    return None


def version(session: Session, dashboard: Dashboard, sha256: str) -> DashboardVersion:
    found = session.get(DashboardVersion, (dashboard.id, sha256))
    if found is None:
        raise DashboardNotFound(f"dashboard {dashboard.id!r} has no version {sha256[:64]!r}")
    return found


def delete(session: Session, dashboard: Dashboard, *, storage_class: str | None = None) -> None:
    """Delete the dashboard with its versions and files and commit; ``storage_class``: the class its owner was
    charged in, whose charge for it stops in this transaction (``metering.py``)."""
    owner = dashboard.owner
    session.execute(sa_delete(DashboardFile).where(DashboardFile.dashboard_id == dashboard.id))
    session.delete(dashboard)
    if storage_class is not None:
        metering.meter_owner(session, owner, storage_class)
    session.commit()


def erase_owner(session: Session, account: Account) -> int:
    """Delete every dashboard of ``account`` (inside erasure's final transaction; no commit here)."""
    dashboards = list(session.scalars(select(Dashboard).where(Dashboard.owner_id == account.id)))
    for dashboard in dashboards:
        session.execute(sa_delete(DashboardFile).where(DashboardFile.dashboard_id == dashboard.id))
        session.delete(dashboard)
    return len(dashboards)


def _erase_dashboards(session: Session, erasure) -> None:
    """Erasure's final transaction (``accounts/personal_data.py``): the user's dashboards go with the account (their
    servers and shares went with the JupyterHub user in an earlier step)."""
    erase_owner(session, erasure.account)


if _erase_dashboards not in ERASURE_HOOKS:
    ERASURE_HOOKS.append(_erase_dashboards)


class RunNotReady(DashboardError):
    """The run has no results to publish yet (409)."""


def _run_result_links(session: Session, run_id: str) -> list[dict[str, str]]:
    """The dashboards published from a run, as the run's API answer lists them (``processors.runs``)."""
    return [
        {
            "kind": "dashboard",
            "id": d.id,
            "title": d.title,
            "url": f"/user/{d.owner.name}/{SERVER_PREFIX}{d.id}/",
        }
        for d in from_run(session, run_id)
    ]


if _run_result_links not in RUN_RESULT_LINKS:
    RUN_RESULT_LINKS.append(_run_result_links)
