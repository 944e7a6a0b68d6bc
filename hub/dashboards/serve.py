"""The program of a dashboard server: fetch the frozen notebook, check it, and serve it with Voila behind the hub's
login. The spawner runs it as the owner's server (``spawners/dashboard_servers.py``), as the owner's system user.

Route chosen, and why:

* **jupyter-server-proxy's standalone proxy** (``jupyter-standaloneproxy``, 4.6) listens on the server's address
  and does JupyterHub's OAuth itself (``HubOAuthenticated``, with the server's ``JUPYTERHUB_OAUTH_ACCESS_SCOPES``,
  so exactly the owner and those the server is shared with get in; others get 403). Behind it, **Voila** serves the
  one notebook on 127.0.0.1 at a port the proxy chooses. Voila's application has no contents, terminals, kernel
  list or JupyterLab handlers at all: its routes are the notebook page, its own kernels' websocket and
  ``/api/kernels/<id>`` (UUIDs it handed out), its static assets and ``/voila/files/`` (images below the dashboard's
  own folder). Rejected: Voila as an extension of ``jupyterhub-singleuser`` (a jupyter_server carries
  ``/lab``, ``/api/contents``, ``/terminals`` and ``/api/kernels``: a share would hand them all to viewers); jhub-apps
  (see ARCHITECTURE.md).
* Voila's port is reachable by every local process, so Voila requires a token that only the proxy knows (it adds
  ``Authorization: token ...`` to every proxied request, replacing the viewer's); the token is made here, at random,
  and never reaches a browser.
* The hub's answers about a viewer are not cached (``FreshHubOAuth``; upstream caches them for 5 minutes): a
  revoked share is refused at the viewer's next request. The one exception is Voila's own scripts and those of the
  installed JupyterLab extensions (the same files for every dashboard), for which a "yes" is reused for a second
  (``viewer_login``). An open websocket (the kernel's channels, which carry the
  widgets' messages) asks the hub again before forwarding a viewer's message once ``RECHECK_SECONDS`` have passed
  since the last answer, and closes with 1008 (policy violation) when the viewer has lost access, so a revoked viewer
  can move no widget after that (``revocation_aware``). The hub is asked at most once a second per connection,
  not for each of a dragged slider's many messages; a hub that does not answer closes the connection (fail closed).
* Activity: the proxy reports real traffic only (``ActivityReporter``), never "active" on a timer as upstream's
  reporter does (that would keep an idle dashboard from ever being culled). It reports once when it starts serving,
  and then every ``ACTIVITY_REPORT_SECONDS`` while a viewer's request is in flight (the first request after a start
  waits for Voila or the app to start and, for Voila, for the notebook to run) or when a request or websocket message
  passed since the last report. Why: JupyterHub sets a server's ``last_activity`` when its spawn *begins* and learns
  of proxied traffic only every ``last_activity_interval`` (5 minutes); without these reports, a dashboard whose
  start and first page took longer than the idle timeout was culled in the middle of the viewer's first request, who
  got the proxy's 503. A dashboard nobody opens is still culled one idle timeout after its last request.
* The notebook is fetched with the server's own token (the owner's) from the platform service, its SHA-256 compared
  with the version the hub admitted, and written read-only into a fresh private folder, which is Voila's root: no
  file of the owner's home is below it, and Voila's file handler serves only below its root. The files frozen with
  the version (a processor run's output files) are written beside it at their relative paths, for the notebook's
  code to read; Voila's empty file allow-list serves none of them to viewers.
* **Hosted apps** (``POLARTEP_DASHBOARD_KIND`` ``panel`` or ``web``, set by the spawner from the service's record):
  the version is a manifest (kind, entry point, runner, each file's SHA-256); every file is fetched, checked against
  it and written read-only into the fresh private folder, and the platform's fixed command for the kind runs it
  (``app_command``): ``panel serve <entry>`` for Panel, uvicorn with ``module:attribute`` (ASGI or WSGI) or the
  static file server of this module (``static_site``) for web apps. The entry point is only ever an argument
  (checked again here: a file of the app, or ``module:attribute``); nothing of the owner's picks the program,
  image or environment. An app listens on a **Unix socket** in a new private (0700) folder, never on a TCP
  port: no other process of the machine (or of the container) reaches it except through the proxy, so it needs no
  token. The owner's hub token is removed from the app's environment (the proxy keeps its own copy for the login).
  The app's code is imported once before the proxy starts: an app that raises at import fails the start, the
  owner's log gets the traceback and the viewer reads the exception's type (not its message or the code).
* When the dashboard cannot be served (the version cannot be fetched or does not match), the reason is appended to
  ``~/.polartep-dashboards/<id>.log`` in the owner's home, and the program ends; the spawner then fails the start
  with that reason, which the viewer who started it sees on the hub's progress page.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NOTEBOOK_NAME = "dashboard.ipynb"
RECHECK_SECONDS = 1.0
# Below a third of any idle timeout the culler may be given (it checks every 5 s at the least).
ACTIVITY_REPORT_SECONDS = 5.0
REVOKED_CLOSE_CODE = 1008  # RFC 6455: policy violation
# Voila's own scripts and those of the installed JupyterLab extensions: the same files for every dashboard.
VOILA_SHARED_ASSETS = re.compile(r"voila/(static|labextensions)/[A-Za-z0-9@._/-]+")
SHARED_ASSET_ANSWER_SECONDS = 1.0
# An extension's script whose URL carries its content hash (``?v=<hash>``, as JupyterLab's loader asks for them).
VERSIONED_EXTENSION_SCRIPT = re.compile(r"voila/labextensions/[A-Za-z0-9@._/-]+")
IMMUTABLE = "private, max-age=31536000, immutable"
READY_POLL_SECONDS = 0.05
# Below simpervisor's own limit on one readiness check (5 s), so a check that is cut off still returns False itself.
READY_CHECK_SECONDS = 4.0
FAILURE_LOG_FOLDER = ".polartep-dashboards"


def fetch_notebook(service_url: str, token: str, dashboard_id: str, version: str) -> bytes:
    """The frozen notebook's bytes, checked against ``version`` (its SHA-256); ``SystemExit`` with the reason."""
    url = f"{service_url.rstrip('/')}/api/v1/dashboards/{dashboard_id}/versions/{version}/notebook"
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the platform's own URL)
            content = response.read()
    except OSError as error:
        raise SystemExit(
            f"polartep dashboard: cannot fetch dashboard {dashboard_id} version {version}: {error}"
        ) from None
    if hashlib.sha256(content).hexdigest() != version:
        raise SystemExit(
            f"polartep dashboard: dashboard {dashboard_id}: the notebook does not match its version"
        )
    return content


def fetch_files(service_url: str, token: str, dashboard_id: str, version: str) -> dict[str, bytes]:
    """The files frozen with the version (a run's output files), by relative path; ``SystemExit`` with the reason."""
    base = f"{service_url.rstrip('/')}/api/v1/dashboards/{dashboard_id}/versions/{version}/files"

    def get(url: str) -> bytes:
        request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (the platform's own URL)
            return response.read()

    try:
        listing = json.loads(get(base))["files"]
        return {item["path"]: get(f"{base}/{urllib.parse.quote(item['path'])}") for item in listing}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(
            f"polartep dashboard: cannot fetch the files of dashboard {dashboard_id} version {version}: {error}"
        ) from None


def write_dashboard(content: bytes, files: dict[str, bytes] | None = None) -> Path:
    """A new private folder holding only the notebook and its frozen files (at their relative paths), read-only.
    A path that would leave the folder is refused (the service allows only plain relative paths anyway)."""
    folder = Path(tempfile.mkdtemp(prefix="polartep-dashboard-"))
    for relative, data in (files or {}).items():
        target = (folder / relative).resolve()
        if folder.resolve() not in target.parents or target.name == NOTEBOOK_NAME:
            raise SystemExit(f"polartep dashboard: refusing the file path {relative[:120]!r}")
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o400)
    notebook = folder / NOTEBOOK_NAME
    notebook.write_bytes(content)
    notebook.chmod(0o400)
    return folder


def fetch_app(service_url: str, token: str, dashboard_id: str, version: str) -> tuple[dict, dict[str, bytes]]:
    """An app's manifest and files, each checked against the version (the manifest's SHA-256 and the file hashes it
    lists); ``SystemExit`` with the reason."""
    manifest_bytes = fetch_notebook(service_url, token, dashboard_id, version)
    try:
        manifest = json.loads(manifest_bytes)
        expected = dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        raise SystemExit(f"polartep dashboard: app {dashboard_id}: its manifest is not valid") from None
    files = fetch_files(service_url, token, dashboard_id, version)
    if set(files) != set(expected) or any(
        hashlib.sha256(data).hexdigest() != expected[path] for path, data in files.items()
    ):
        raise SystemExit(f"polartep dashboard: app {dashboard_id}: its files do not match its version")
    return manifest, files


def write_app(files: dict[str, bytes]) -> Path:
    """A new private folder holding only the app's files (at their relative paths), read-only."""
    folder = Path(tempfile.mkdtemp(prefix="polartep-app-"))
    for relative, data in files.items():
        target = (folder / relative).resolve()
        if folder.resolve() not in target.parents:
            raise SystemExit(f"polartep dashboard: refusing the file path {relative[:120]!r}")
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o400)
    return folder


_MODULE_ENTRY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


def app_command(kind: str, manifest: dict, folder: Path, base_url: str) -> tuple[list[str], bool]:
    """The platform's fixed command for an app of ``kind`` (the proxy fills ``{unix_socket}``), and whether the
    proxy passes the full path (Panel's ``--prefix``) or the path below the server's prefix (web apps, which get
    ``X-Forwarded-Prefix``). ``SystemExit`` when the manifest does not fit its kind."""
    entry, runner = str(manifest.get("entry", "")), manifest.get("runner")
    if manifest.get("app") != kind:
        raise SystemExit(f"polartep dashboard: the app's manifest is not of kind {kind}")
    files = manifest.get("files") or {}
    if kind == "panel":
        if entry not in files or not entry.endswith((".py", ".ipynb")):
            raise SystemExit("polartep dashboard: a Panel app's entry must be one of its .py or .ipynb files")
        return [
            sys.executable,
            "-m",
            "panel",
            "serve",
            str(folder / entry),
            "--unix-socket={unix_socket}",
            f"--prefix={base_url}",
            # The proxy checks that a websocket's origin is the page's own (tornado's same-origin rule); bokeh
            # leaves origins to the proxy on a Unix socket.
            "--allow-websocket-origin=*",
            "--index",
            Path(entry).stem,
        ], True
    if kind == "web" and runner == "static":
        if entry not in files or not entry.endswith(".html"):
            raise SystemExit("polartep dashboard: a static site's entry must be one of its .html files")
        os.environ["POLARTEP_STATIC_ROOT"] = str(folder)
        os.environ["POLARTEP_STATIC_INDEX"] = entry
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--uds={unix_socket}",
            f"--app-dir={Path(__file__).resolve().parent}",
            "--factory",
            f"{Path(__file__).stem}:static_site",
        ], False
    if kind == "web" and runner in ("asgi", "wsgi"):
        if not _MODULE_ENTRY.fullmatch(entry):
            raise SystemExit("polartep dashboard: a web app's entry must be module:attribute")
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--uds={unix_socket}",
            f"--app-dir={folder}",
            f"--interface={'wsgi' if runner == 'wsgi' else 'auto'}",
            "--no-server-header",
            entry,
        ], False
    raise SystemExit(f"polartep dashboard: no runner for an app of kind {kind[:20]!r}")


IMPORT_CHECK = """
import importlib, runpy, sys
kind, entry = sys.argv[1], sys.argv[2]
if kind == "panel" and entry.endswith(".py"):
    runpy.run_path(entry, run_name="__polartep_check__")
elif kind == "web":
    module, _, attribute = entry.partition(":")
    getattr(importlib.import_module(module), attribute)
"""
"""Imports the app's code once, as its runner will, so that an app that raises at import fails the start."""


def check_app_imports(kind: str, manifest: dict, folder: Path, dashboard_id: str) -> None:
    """Import the app's entry point in a child process in the app's folder; ``SystemExit`` naming the exception's
    type when it raises (its traceback goes to the owner's failure log, never to the viewer)."""
    import subprocess

    entry = str(manifest.get("entry", ""))
    if kind == "web" and manifest.get("runner") == "static":
        return
    environment = {**os.environ, "PYTHONPATH": str(folder)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", IMPORT_CHECK, kind, entry],
            cwd=folder,
            env=environment,
            capture_output=True,
            text=True,
            timeout=IMPORT_CHECK_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise SystemExit(
            f"polartep dashboard: the app did not finish importing within {IMPORT_CHECK_SECONDS} s"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        error_type = re.match(r"[A-Za-z_][\w.]*", last)
        record_traceback(dashboard_id, done.stderr)
        name = error_type.group(0) if error_type else "an error"
        raise SystemExit(f"polartep dashboard: the app raised {name} at import")


IMPORT_CHECK_SECONDS = 120


def record_traceback(dashboard_id: str, text: str) -> None:
    """Append an app's traceback to the owner's failure log (before the one-line reason, which stays last)."""
    try:
        path = failure_log(os.environ.get("HOME", "/nonexistent"), dashboard_id)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(text[-20000:].rstrip() + "\n")
    except OSError:
        pass


def static_site():
    """An ASGI app serving the files below ``POLARTEP_STATIC_ROOT`` (a static site's frozen files), GET and HEAD only.

    A path is decoded once and split into segments; a segment that is empty, ``.``, ``..`` or starts with a dot, or
    a resolved path outside the root, is 404; ``/`` (and a folder) answers its ``index.html``, the root the entry.
    """
    import mimetypes
    import urllib.parse

    root = Path(os.environ["POLARTEP_STATIC_ROOT"]).resolve()
    index = os.environ.get("POLARTEP_STATIC_INDEX", "index.html")

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        status, body, content_type = 404, b"not found", "text/plain; charset=utf-8"
        if scope["method"] not in ("GET", "HEAD"):
            status, body = 405, b"method not allowed"
        else:
            path = urllib.parse.unquote(scope["path"])
            segments = [segment for segment in path.split("/")]
            inner = segments[1:-1] if path.endswith("/") else segments[1:]
            if all(part and not part.startswith(".") and "\\" not in part for part in inner):
                relative = "/".join(inner)
                target = (root / relative) if relative else root / index
                if target.is_dir():
                    target = target / "index.html"
                resolved = target.resolve()
                if (resolved == root or root in resolved.parents) and resolved.is_file():
                    status, body = 200, resolved.read_bytes()
                    content_type = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    return app


def kernel_replies_launcher() -> list[str]:
    """The command that runs a module with ``kernel_replies`` installed: the platform's module where the package is
    installed (local mode), else the copy the images carry next to this program (``/opt/polartep``)."""
    try:
        import polartep_hub.kernel_replies  # noqa: F401
    except ImportError:
        return [sys.executable, str(Path(__file__).with_name("kernel_replies.py"))]
    return [sys.executable, "-m", "polartep_hub.kernel_replies"]


def voila_command(folder: Path, base_url: str, token: str) -> list[str]:
    """Voila on 127.0.0.1 at the proxy's ``{port}``, serving the one notebook under the server's prefix; started
    through ``kernel_replies`` so that a kernel's reply whose wake-up the client missed cannot stall the page."""
    return [
        *kernel_replies_launcher(),
        "voila",
        str(folder / NOTEBOOK_NAME),
        "--no-browser",
        "--port={port}",
        "--Voila.ip=127.0.0.1",
        f"--Voila.root_dir={folder}",
        f"--Voila.base_url={base_url}",
        f"--Voila.token={token}",
        # Tracebacks may show paths and values of the owner's: viewers see that an error happened, not its details.
        "--VoilaConfiguration.show_tracebacks=False",
        "--VoilaConfiguration.file_allowlist=[]",
    ]


def failure_log(home: str, dashboard_id: str) -> Path:
    """Where a dashboard server writes why it could not start, in its owner's home (the owner reads it there; the
    spawner shows its last line to whoever started it: ``spawners/dashboard_servers.py``)."""
    return Path(home) / FAILURE_LOG_FOLDER / f"{dashboard_id}.log"


def record_failure(dashboard_id: str, reason: str) -> None:
    """Append ``reason`` to the failure log (best effort: a full disk must not hide the reason from the log)."""
    try:
        path = failure_log(os.environ.get("HOME", "/nonexistent"), dashboard_id)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {reason[:500]}\n")
    except OSError:
        pass


def prepare(environment) -> tuple[Path, str]:
    """Fetch and check the frozen notebook; write it into its folder. ``SystemExit`` with the reason otherwise."""
    dashboard_id = environment["POLARTEP_DASHBOARD_ID"]
    version = environment["POLARTEP_DASHBOARD_VERSION"]
    content = fetch_notebook(
        environment["POLARTEP_SERVICE_URL"], environment["JUPYTERHUB_API_TOKEN"], dashboard_id, version
    )
    try:
        json.loads(content)
    except ValueError:
        raise SystemExit(f"polartep dashboard: dashboard {dashboard_id}: the notebook is not JSON") from None
    files = fetch_files(
        environment["POLARTEP_SERVICE_URL"], environment["JUPYTERHUB_API_TOKEN"], dashboard_id, version
    )
    return write_dashboard(content, files), dashboard_id


class ActivityReporter:
    """Tells the hub when viewers used the dashboard (rule above): ``traffic()`` at each proxied request or websocket
    message, ``request_started()``/``request_finished()`` around each proxied HTTP request; ``report()`` posts to the
    hub's activity API what is due. Best effort: a report the hub does not take is logged and tried at the next tick.
    """

    def __init__(self, activity_url: str, server_name: str, token: str, log) -> None:
        self.activity_url = activity_url
        self.server_name = server_name
        self.token = token
        self.log = log
        self.in_flight = 0
        self.traffic_at: datetime | None = None
        self.reported_at: datetime | None = None

    def traffic(self) -> None:
        self.traffic_at = datetime.now(UTC)

    def request_started(self) -> None:
        self.in_flight += 1
        self.traffic()

    def request_finished(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.traffic()

    def due(self) -> datetime | None:
        """The activity time to report now: now while a request is in flight; the last traffic if it is newer than
        the last report; else None (an unvisited dashboard reports nothing and is culled)."""
        if self.in_flight:
            return datetime.now(UTC)
        if self.traffic_at is not None and (self.reported_at is None or self.traffic_at > self.reported_at):
            return self.traffic_at
        return None

    async def report(self, when: datetime | None = None) -> bool:
        """Post ``when`` (default: what is due) as the server's last activity; whether the hub took it."""
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        when = when or self.due()
        if when is None:
            return True
        stamp = when.isoformat().replace("+00:00", "Z")
        body = json.dumps({"servers": {self.server_name: {"last_activity": stamp}}, "last_activity": stamp})
        request = HTTPRequest(
            self.activity_url,
            method="POST",
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=body,
            request_timeout=10,
        )
        try:
            await AsyncHTTPClient().fetch(request)
        except Exception as error:  # the hub restarting, or slow: the next tick tries again
            self.log.warning("The hub did not take the dashboard's activity: %s", error)
            return False
        self.reported_at = max(when, self.reported_at) if self.reported_at else when
        return True


def activity_aware(handler_class: type, reporter: ActivityReporter) -> type:
    """The proxy's handler class, which tells ``reporter`` about every proxied request and websocket message."""

    class ActivityAwareProxyHandler(handler_class):
        def _record_activity(self):
            # Called by the proxy only once the request passed the login: a viewer's request or message.
            reporter.traffic()

        async def proxy(self, port, path):
            # Only a permitted viewer's request is activity (a stranger's 403 or an anonymous redirect to the login is
            # not); the login's answer is cached on the request, so asking here costs the hub nothing more.
            if not self.current_user:
                return await super().proxy(port, path)
            reporter.request_started()
            try:
                return await super().proxy(port, path)
            finally:
                reporter.request_finished()

        async def open(self, *args, **kwargs):
            reporter.traffic()  # the websocket's upgrade request passed the login
            return await super().open(*args, **kwargs)

    return ActivityAwareProxyHandler


def revocation_aware(handler_class: type) -> type:
    """The standalone proxy's handler class, whose websockets re-check the viewer's access (rule above)."""

    from jupyterhub.services.auth import UserNotAllowed

    class RevocationAwareProxyHandler(handler_class):
        _access_checked_at = 0.0

        async def open(self, *args, **kwargs):
            self._access_checked_at = time.monotonic()  # the upgrade request was authorised just now
            return await super().open(*args, **kwargs)

        async def on_message(self, message):
            # Tornado awaits this before it reads the next message: messages stay in order.
            if time.monotonic() - self._access_checked_at >= RECHECK_SECONDS:
                if not await self.viewer_still_allowed():
                    self.log.info("Closing the websocket of a viewer who lost access: %s", self.request.path)
                    self.close(REVOKED_CLOSE_CODE, "your access to this dashboard was revoked")
                    return
                self._access_checked_at = time.monotonic()
            super().on_message(message)

        async def viewer_still_allowed(self) -> bool:
            """Ask the hub again (no cache) whether the connection's token or cookie still grants access."""
            for cached in ("_cached_hub_user", "_hub_auth_user_cache"):
                self.__dict__.pop(cached, None)
            try:
                model = await self.hub_auth.get_user(self, sync=False)
                if not model:
                    return False
                self.check_hub_user(model)
            except UserNotAllowed:
                return False
            except Exception:
                self.log.exception("The hub did not answer whether a viewer may still use the dashboard")
                return False
            return True

    return RevocationAwareProxyHandler


async def poll_briskly(ready: Callable[[Any], Awaitable[bool]], process: Any) -> bool:
    """``ready(process)`` tried every ``READY_POLL_SECONDS`` until True, the process ends, or ``READY_CHECK_SECONDS``.

    Why: the proxy learns that Voila (or an app) listens through simpervisor, which waits 0.01 s, 0.02 s, 0.04 s, ...
    between checks, doubling each time. Voila up after 2.6 s was noticed at 5.1 s, after 1.3 s at 2.6 s: the viewer's
    first page waited up to half the start-up again, and the cold start came out at 3.2 s or 5.1 s by chance. Each
    of simpervisor's checks now polls briskly itself; a refused connection costs a few milliseconds."""
    deadline = time.monotonic() + READY_CHECK_SECONDS
    while True:
        if await ready(process):
            return True
        if process.returncode is not None or time.monotonic() >= deadline:
            return False
        await asyncio.sleep(READY_POLL_SECONDS)


def briskly_ready(handler_class: type) -> type:
    """The proxy's handler class, which notices its program listening within ``READY_POLL_SECONDS`` (rule above)."""

    class BriskReadinessProxyHandler(handler_class):
        async def _http_ready_func(self, p):
            return await poll_briskly(super()._http_ready_func, p)

    return BriskReadinessProxyHandler


def path_below(prefix: str, path: str, pattern: re.Pattern[str]) -> bool:
    """Whether ``path`` is the server's ``prefix`` followed by a full match of ``pattern``, with no ``..`` in it."""
    base = prefix.rstrip("/") + "/"
    return path.startswith(base) and ".." not in path and pattern.fullmatch(path[len(base) :]) is not None


def viewer_login(handler_class: type, shared_assets: re.Pattern[str] | None = None) -> type:
    """The proxy's handler class, which asks the hub about the viewer without blocking the proxy's event loop, and
    once a second for the requests whose path matches ``shared_assets`` (below the server's prefix).

    Why, the event loop: upstream's login (``HubAuthenticated.get_current_user``) is synchronous; it waits for the
    hub's answer on the proxy's only event loop, so the requests of one page load (the page, its scripts, the
    kernel's API and websocket) and the bytes of every proxied response waited, one hub answer after another. The
    answer is fetched here before the handler runs (tornado awaits ``prepare``) and kept on the request, where the
    synchronous login finds it.

    Why, the shared assets: a Voila page loads about 30 scripts of Voila and the installed JupyterLab extensions, and
    the browser revalidates each at every load; each asked the hub, which answers one question at a time, so they
    took about 80 ms each against 20 ms from bare Voila. Those files are the same for every dashboard and hold
    nothing of the owner's, so for them an answer (only a "yes") is reused for ``SHARED_ASSET_ANSWER_SECONDS``, keyed
    by the viewer's credentials; the login's scope check still runs on it. Every other request (the page, the kernel,
    files) asks the hub afresh: a revoked viewer gets nothing of the dashboard at the next request."""

    answers: dict[str, tuple[dict, float]] = {}

    class ViewerLoginProxyHandler(handler_class):
        def _shared_asset_key(self) -> str | None:
            if shared_assets is None:
                return None
            if not path_below(self.settings.get("base_url", "/"), self.request.path, shared_assets):
                return None
            credentials = [self.request.headers.get(name, "") for name in ("Authorization", "Cookie")]
            return hashlib.sha256("\0".join(credentials).encode()).hexdigest()

        async def prepare(self, *args, **kwargs):
            key = self._shared_asset_key()
            now = time.monotonic()
            if key is not None and key in answers and answers[key][1] > now:
                self._cached_hub_user = answers[key][0]
            else:
                model = await self.hub_auth.get_user(self, sync=False)
                if key is not None and model:
                    for stale in [k for k, (_, until) in answers.items() if until <= now]:
                        del answers[stale]
                    answers[key] = (model, now + SHARED_ASSET_ANSWER_SECONDS)
            prepared = super().prepare(*args, **kwargs)
            if prepared is not None:
                await prepared

    return ViewerLoginProxyHandler


def keep_versioned_scripts(request, response) -> None:
    """Let the browser keep an extension's script whose URL names its content (a ``rewrite_response`` of the proxy).

    Why: Voila serves the JupyterLab extensions' scripts with ``Cache-Control: no-cache`` even where the URL carries
    the file's content hash (``?v=<hash>``), so the browser asked again for about 20 of them at every page load,
    and each such question passes the hub's proxy, this proxy and the viewer's login. A new version of an extension
    has a new hash and so a new URL; the file at one URL never changes."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    versioned = path_below(prefix, request.path, VERSIONED_EXTENSION_SCRIPT)
    if versioned and request.query_arguments.get("v") and response.code in (200, 304):
        response.headers["Cache-Control"] = IMMUTABLE


def pages_streamed(handler_class: type) -> type:
    """The proxy's handler class, which passes a page on to the browser as the program writes it.

    Why: the standalone proxy streams only ``text/event-stream`` and holds every other response until its end. Voila
    writes the page's head (its scripts and styles) at once and the notebook's outputs as its cells run: held, the
    browser began fetching the page's scripts only after the last cell, where bare Voila has them loaded by then."""

    class StreamedPagesProxyHandler(handler_class):
        async def _proxy_buffered(self, host, port, proxied_path, body, client):
            if self.request.method == "GET" and "text/html" in self.request.headers.get("Accept", ""):
                return await self._proxy_progressive(host, port, proxied_path, body, client)
            return await super()._proxy_buffered(host, port, proxied_path, body, client)

    return StreamedPagesProxyHandler


class _NoClient:
    """The connection of the proxy's own request that starts its program: no client to tell when it closes."""

    def set_close_callback(self, callback) -> None:
        pass


async def start_program(application, handler_class: type, handler_kwargs: dict, base_url: str, log) -> None:
    """Start the proxy's program (Voila or the app) now, as a viewer's first request would, and wait until it listens.

    Why: the standalone proxy starts its program at the first request that passed the login; the viewer's first page
    then waited for the hub's redirects and OAuth exchange and only after them for Voila to start. Started when the
    proxy starts, the program boots while the hub routes the viewer here. The handler's own ``ensure_process`` starts
    it (same command, port, environment, readiness check and lock): a viewer's request that comes first, or while it
    starts, waits for the same start and never starts a second one."""
    from tornado.httputil import HTTPServerRequest
    from tornado.web import HTTPError

    request = HTTPServerRequest(method="GET", uri=base_url, connection=_NoClient())
    handler = handler_class(application, request, **handler_kwargs)
    try:
        await handler.ensure_process()
    except HTTPError as failure:
        # Not the viewer's error: their first request tries the start again and answers with the outcome.
        log.warning("The dashboard's program did not start with the proxy: %s", failure)


def prepare_app(environment, kind: str) -> tuple[list[str], bool]:
    """Fetch, check and write an app; import it once; its runner's command. ``SystemExit`` with the reason."""
    dashboard_id = environment["POLARTEP_DASHBOARD_ID"]
    manifest, files = fetch_app(
        environment["POLARTEP_SERVICE_URL"],
        environment["JUPYTERHUB_API_TOKEN"],
        dashboard_id,
        environment["POLARTEP_DASHBOARD_VERSION"],
    )
    folder = write_app(files)
    command, absolute_url = app_command(
        kind, manifest, folder, environment.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    )
    check_app_imports(kind, manifest, folder, dashboard_id)
    os.chdir(folder)  # the app reads its own files by relative paths
    return command, absolute_url


def main() -> None:
    environment = os.environ
    kind = environment.get("POLARTEP_DASHBOARD_KIND", "voila")
    try:
        if kind == "voila":
            folder, _ = prepare(environment)
        else:
            app, absolute_url = prepare_app(environment, kind)
    except SystemExit as failure:
        record_failure(environment.get("POLARTEP_DASHBOARD_ID", "unknown"), str(failure))
        raise
    base_url = environment.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    voila_token = secrets.token_urlsafe(32)

    # Imported late: the checks above should not pay for the imports when they fail.
    from jupyter_server_proxy.standalone.app import StandaloneProxyServer
    from jupyterhub.services.auth import HubOAuth

    class FreshHubOAuth(HubOAuth):
        """Asks the hub about the viewer at every request: a revoked share is refused at once."""

        def user_for_token(self, token, use_cache=True, session_id="", *, sync=True):
            return super().user_for_token(token, use_cache=False, session_id=session_id, sync=sync)

    # The singleton the proxy's handlers get from HubOAuth.instance() (a SingletonConfigurable: the first instance
    # of a subclass is every parent's instance too).
    auth = FreshHubOAuth.instance()
    reporter = ActivityReporter(
        environment.get("JUPYTERHUB_ACTIVITY_URL", ""),
        environment.get("JUPYTERHUB_SERVER_NAME", ""),
        auth.api_token,
        auth.log,
    )

    class DashboardProxyServer(StandaloneProxyServer):
        def get_proxy_base_class(self):
            handler_class, kwargs = super().get_proxy_base_class()
            if handler_class is None:
                return None, kwargs
            shared_assets = VOILA_SHARED_ASSETS if kind == "voila" else None
            handler_class = revocation_aware(briskly_ready(pages_streamed(handler_class)))
            handler_class = viewer_login(handler_class, shared_assets)
            return activity_aware(handler_class, reporter), kwargs

        def make_proxy_handler(self):
            # Kept: the program is started with the very class and shared state the application serves with.
            self.proxy_handler = super().make_proxy_handler()
            return self.proxy_handler

        def create_app(self):
            from tornado.ioloop import IOLoop

            application = super().create_app()
            handler_class, handler_kwargs = self.proxy_handler
            IOLoop.current().add_callback(
                start_program, application, handler_class, handler_kwargs, self.base_url, self.log
            )
            return application

        def start(self):
            if reporter.activity_url and reporter.server_name:
                from tornado.ioloop import IOLoop, PeriodicCallback

                # Serving from now on: the culler counts the idle time from here, not from the spawn's beginning.
                IOLoop.current().add_callback(reporter.report, datetime.now(UTC))
                PeriodicCallback(reporter.report, ACTIVITY_REPORT_SECONDS * 1000).start()
            super().start()

    if kind != "voila":
        # The proxy's login keeps the token it read; the owner's app (and whatever a viewer makes it do) does not
        # get the owner's hub token in its environment.
        assert auth.api_token
        for name in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"):
            os.environ.pop(name, None)
        DashboardProxyServer.launch_instance(
            argv=["--", *app],
            absolute_url=absolute_url,
            activity_interval=0,
            timeout=90,
            unix_socket=True,
        )
        return
    DashboardProxyServer.launch_instance(
        argv=["--", *voila_command(folder, base_url, voila_token)],
        absolute_url=True,
        activity_interval=0,
        timeout=90,
        request_headers_override={"Authorization": f"token {voila_token}"},
        rewrite_response=[keep_versioned_scripts],
    )


if __name__ == "__main__":
    main()
