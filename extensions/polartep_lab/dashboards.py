"""The server extension's dashboard routes ("Publish as dashboard" in JupyterLab), under ``polartep/api/dashboards``.

Rules this module guarantees:

* ``POST polartep/api/dashboards`` ``{"path", "title", "description"?}``: the notebook at ``path`` (relative to the
  server's root, read through the server's contents manager, so only what this server may read) is published
  through the service's ``POST api/v1/dashboards`` with the server's own token: the dashboard is the server owner's.
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
        (shares, SharesHandler),
        (rf"{shares}/(users|groups)/({SHARE_TARGET})", RevokeShareHandler),
        (rf"/{API_PREFIX}/dashboards/({DASHBOARD_ID})/share-code", ShareCodeHandler),
    ]
