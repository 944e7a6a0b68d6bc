"""The server extension's dashboard routes ("Publish as dashboard" in JupyterLab), under ``polartep/api/dashboards``.

Rules this module guarantees:

* ``POST polartep/api/dashboards`` ``{"path", "title", "description"?}``: the notebook at ``path`` (relative to the
  server's root, read through the server's contents manager, so only what this server may read) is published
  through the service's ``POST api/v1/dashboards`` with the server's own token: the dashboard is the server owner's.
* ``POST polartep/api/apps`` ``{"path", "kind", "entry"?, "runner"?, "title", "description"?}`` ("Publish as app"):
  the file or folder at ``path`` (read through the server's contents manager, like a notebook) becomes a hosted app
  of the owner through the same service route, ``POST api/v1/dashboards`` with ``kind`` and ``app`` (its files
  base64-encoded by their paths relative to the folder; a single file by its name). A folder gives its regular files
  below it, skipping hidden names and ``__pycache__``, at most ``MAX_APP_FILES`` files and ``MAX_APP_BYTES`` bytes
  together (413 naming the limit, nothing sent); ``entry`` defaults to the file itself (a Panel ``.py`` or
  ``.ipynb``, a static site's ``.html``) or ``<stem>:app`` for an ASGI or WSGI ``.py`` file. The service checks
  everything again (the kind, runner, entry point and paths) and decides whether the owner may publish it.
* ``GET``/``POST polartep/api/dashboards/<id>/shares`` (``{"user"}`` or ``{"group"}``, a project's group),
  ``DELETE .../shares/users/<name>`` and ``.../shares/groups/<name>``, and ``POST .../share-code``: the owner's
  sharing controls, forwarded to the service's routes of the same names (``client.SERVICE_ROUTES``). ``<id>`` must
  be a dashboard id (10 hex digits) and ``<name>`` a plain name, or the route does not match (404 naming the
  allow-list); the service decides who may share what (anyone but the owner gets its 404).
* The service's refusals come back with its status and detail (``message``); an unreachable service is 502.
* Nothing here decides access: the platform service and JupyterHub do.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized

from .handlers import API_PREFIX, _BaseHandler, _ServiceCallHandler

# The service's limit for a dashboard's notebook (hub/dashboards/store.py); refused here before sending.
MAX_NOTEBOOK_BYTES = 10 * 1024 * 1024
# The service's limits for an app's files (hub/dashboards/store.py: MAX_FILES, MAX_APP_BYTES); refused here first.
MAX_APP_FILES = 20
MAX_APP_BYTES = 8 * 1024 * 1024
APP_KINDS = ("panel", "web")
WEB_RUNNERS = ("asgi", "wsgi", "static")
SKIPPED_NAMES = ("__pycache__",)
DASHBOARD_ID = r"[0-9a-f]{10}"
SHARE_TARGET = r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,255}"


class _DashboardHandler(_ServiceCallHandler):
    """Forwards one allow-listed dashboard route to the service and answers as it did."""

    def _json_body(self) -> dict[str, Any] | None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.write_json(400, {"message": "send a JSON object"})
            return None
        return body

    async def forward_named(
        self, route: str, body: dict[str, Any] | None = None, ok: int = 200, **names: str
    ) -> None:
        """``forward`` with the route's placeholders (``dashboard``, ``name``) given by name."""
        await self.forward(route, body, names or None, ok=ok)


class PublishDashboardHandler(_DashboardHandler):
    """Publish a notebook of this server as a dashboard of its owner."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        if self.refused_unconfigured():
            return
        body = self._json_body()
        if body is None:
            return
        path = body.get("path")
        if not isinstance(path, str) or not path.endswith(".ipynb"):
            self.write_json(400, {"message": 'send "path": the path of a notebook (.ipynb)'})
            return
        if not isinstance(body.get("title"), str) or not isinstance(body.get("description", ""), str):
            self.write_json(400, {"message": '"title" and "description" must be text'})
            return
        try:
            model = await ensure_async(
                self.contents_manager.get(path, content=True, type="file", format="base64")
            )
        except tornado.web.HTTPError as error:
            self.write_json(error.status_code, {"message": error.log_message or f"cannot read {path!r}"})
            return
        content = base64.b64decode(model["content"])
        if len(content) > MAX_NOTEBOOK_BYTES:
            self.write_json(
                413, {"message": f"{path!r} is over {MAX_NOTEBOOK_BYTES} bytes; clear its large outputs"}
            )
            return
        try:
            notebook = json.loads(content)
        except ValueError:
            self.write_json(400, {"message": f"{path!r} is not a notebook (not JSON)"})
            return
        request = {"title": body["title"], "description": body.get("description", ""), "notebook": notebook}
        await self.forward_named("dashboard_publish", request, ok=201)


class _TooLarge(Exception):
    """The app's files are over a limit (413 with this message)."""


class PublishAppHandler(_DashboardHandler):
    """Publish a file or folder of this server as a hosted app (Panel or web) of its owner."""

    async def _read(self, path: str) -> bytes:
        model = await ensure_async(
            self.contents_manager.get(path, content=True, type="file", format="base64")
        )
        return base64.b64decode(model["content"])

    async def _folder_files(self, folder: str) -> dict[str, bytes]:
        """The regular files below ``folder`` by relative path (hidden names and ``__pycache__`` skipped)."""
        files: dict[str, bytes] = {}
        total = 0
        pending = [""]
        while pending:
            relative = pending.pop()
            listing = await ensure_async(
                self.contents_manager.get(f"{folder}/{relative}".rstrip("/"), content=True, type="directory")
            )
            for item in sorted(listing["content"], key=lambda entry: entry["name"]):
                name = item["name"]
                if name.startswith(".") or name in SKIPPED_NAMES:
                    continue
                inner = f"{relative}/{name}" if relative else name
                if item["type"] == "directory":
                    pending.append(inner)
                    continue
                if len(files) == MAX_APP_FILES:
                    raise _TooLarge(
                        f"{folder!r} holds more than {MAX_APP_FILES} files; an app has at most that many"
                    )
                data = await self._read(f"{folder}/{inner}")
                total += len(data)
                if total > MAX_APP_BYTES:
                    raise _TooLarge(f"the files of {folder!r} are over {MAX_APP_BYTES} bytes together")
                files[inner] = data
        return files

    @staticmethod
    def _default_entry(kind: str, runner: str | None, name: str) -> str:
        """The entry point a single file gives: itself, or ``<stem>:app`` for an ASGI or WSGI module."""
        if kind == "web" and runner in (None, "asgi", "wsgi") and name.endswith(".py"):
            return f"{name[: -len('.py')]}:app"
        return name

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        if self.refused_unconfigured():
            return
        body = self._json_body()
        if body is None:
            return
        path, kind, runner = body.get("path"), body.get("kind"), body.get("runner")
        entry = body.get("entry")
        if not isinstance(path, str) or not path.strip("/"):
            self.write_json(400, {"message": 'send "path": the app\'s file or folder'})
            return
        if kind not in APP_KINDS:
            self.write_json(400, {"message": f'"kind" must be one of {", ".join(APP_KINDS)}'})
            return
        if runner is not None and (kind != "web" or runner not in WEB_RUNNERS):
            self.write_json(
                400, {"message": f'"runner" is for web apps only: one of {", ".join(WEB_RUNNERS)}'}
            )
            return
        if entry is not None and (not isinstance(entry, str) or not entry):
            self.write_json(400, {"message": '"entry" must be the entry point\'s text'})
            return
        if not isinstance(body.get("title"), str) or not isinstance(body.get("description", ""), str):
            self.write_json(400, {"message": '"title" and "description" must be text'})
            return
        path = path.strip("/")
        try:
            model = await ensure_async(self.contents_manager.get(path, content=False))
            if model["type"] == "directory":
                files = await self._folder_files(path)
                if not files:
                    self.write_json(400, {"message": f"{path!r} holds no file to publish"})
                    return
                if entry is None:
                    self.write_json(400, {"message": f'send "entry": which file of {path!r} runs the app'})
                    return
            else:
                name = path.rsplit("/", 1)[-1]
                data = await self._read(path)
                if len(data) > MAX_APP_BYTES:
                    raise _TooLarge(f"{path!r} is over {MAX_APP_BYTES} bytes")
                files = {name: data}
                entry = entry or self._default_entry(kind, runner, name)
        except tornado.web.HTTPError as error:
            self.write_json(error.status_code, {"message": error.log_message or f"cannot read {path!r}"})
            return
        except _TooLarge as error:
            self.write_json(413, {"message": str(error)})
            return
        app: dict[str, Any] = {
            "entry": entry,
            "files": {relative: base64.b64encode(data).decode() for relative, data in files.items()},
        }
        if runner is not None:
            app["runner"] = runner
        request = {
            "title": body["title"],
            "description": body.get("description", ""),
            "kind": kind,
            "app": app,
        }
        await self.forward_named("dashboard_publish", request, ok=201)


class SharesHandler(_DashboardHandler):
    """List the dashboard's shares, or share it with a user or a project's group."""

    @tornado.web.authenticated
    @authorized
    async def get(self, dashboard: str) -> None:
        if not self.refused_unconfigured():
            await self.forward_named("dashboard_shares", dashboard=dashboard)

    @tornado.web.authenticated
    @authorized
    async def post(self, dashboard: str) -> None:
        if self.refused_unconfigured():
            return
        body = self._json_body()
        if body is None:
            return
        target = {key: body[key] for key in ("user", "group") if isinstance(body.get(key), str)}
        await self.forward_named("dashboard_share", target, ok=201, dashboard=dashboard)


class RevokeShareHandler(_DashboardHandler):
    """Take one user's or group's access away."""

    @tornado.web.authenticated
    @authorized
    async def delete(self, dashboard: str, kind: str, name: str) -> None:
        if not self.refused_unconfigured():
            route = "dashboard_revoke_user" if kind == "users" else "dashboard_revoke_group"
            await self.forward_named(route, dashboard=dashboard, name=name)


class ShareCodeHandler(_DashboardHandler):
    """A link that lets anyone with a platform account open the dashboard."""

    @tornado.web.authenticated
    @authorized
    async def post(self, dashboard: str) -> None:
        if not self.refused_unconfigured():
            await self.forward_named("dashboard_share_code", {}, ok=201, dashboard=dashboard)


def dashboard_routes() -> list[tuple[str, type[_BaseHandler]]]:
    """The dashboard routes (path under the server's base URL, handler)."""
    shares = rf"/{API_PREFIX}/dashboards/({DASHBOARD_ID})/shares"
    return [
        (rf"/{API_PREFIX}/dashboards", PublishDashboardHandler),
        (rf"/{API_PREFIX}/apps", PublishAppHandler),
        (shares, SharesHandler),
        (rf"{shares}/(users|groups)/({SHARE_TARGET})", RevokeShareHandler),
        (rf"/{API_PREFIX}/dashboards/({DASHBOARD_ID})/share-code", ShareCodeHandler),
    ]
