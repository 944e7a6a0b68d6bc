"""The server extension's HTTP routes, under ``<server base URL>polartep/api/``.

Rules this module guarantees:

* Every route is authenticated by the single-user server (``@tornado.web.authenticated``: JupyterHub's OAuth
  cookie or a token with access to this server) and authorised by jupyter_server's ``@authorized`` on the resource
  ``polartep``. A request without credentials gets the server's own answer for API requests (403), before anything
  reaches the service.
* ``GET polartep/api/me``: the server owner's plan, profile and plan period, from the service's ``api/v1/me`` and
  ``api/v1/users/<owner>/entitlements`` (both on ``client.SERVICE_ROUTES``) plus this server's profile.
* ``POST polartep/api/processors`` ``{"path", "definition"}``: publish the notebook at ``path`` (relative to the
  server's root, read through the server's contents manager, so only what this server may read) with the definition,
  through the service's ``POST api/v1/processors`` with the server's own token; ``.../processors/draft`` ``{"path"}``
  and ``.../processors/validate`` ``{"path", "definition"}`` ask the service for the inferred draft and for the
  field-by-field check. The service's refusals come back with the service's status and detail (``message``).
* ``GET polartep/api/usage``: this month's CPU-hours of the owner (allowance, used, left, renewal, per day),
  top-ups, notices and storage, from the service's ``api/v1/users/<owner>/usage?with_intervals=false``.
* ``polartep/api/dashboards...``: "Publish as dashboard" and its sharing controls (``dashboards.py``).
* Any other path under ``polartep/api/``, with any method, answers 404 naming the allow-list: nothing is forwarded.
* A service error is shown as 502 with the service's status and detail; missing settings as 503 naming them.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from .client import ServiceError

AUTH_RESOURCE = "polartep"
API_PREFIX = "polartep/api"


class _BaseHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    def write_json(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")  # per-user, changes with the plan
        self.finish(json.dumps(body))

    def refused_unconfigured(self) -> bool:
        """Answer 503 naming the settings the extension lacks; True when it did (the request is answered)."""
        missing = self.extensionapp.missing_settings()
        if missing:
            self.write_json(
                503, {"message": f"the Polar TEP extension is not configured: {', '.join(missing)} not set"}
            )
        return bool(missing)

    async def call_service(self, *routes: str) -> list[Any] | None:
        """The service's answers to the allow-listed GET ``routes``, asked at once with the user's own token; None
        when one failed, which is answered 502 with the service's status (the request is answered)."""
        client = self.extensionapp.service_client()
        try:
            return list(await asyncio.gather(*(client.call(route) for route in routes)))
        except ServiceError as e:
            self.log.warning("Polar TEP extension: %s", e)
            self.write_json(502, {"message": str(e), "service_status": e.status})
            return None


class MeHandler(_BaseHandler):
    """The user's plan, profile and remaining plan period, for the sidebar panel and the status bar."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        if self.refused_unconfigured():
            return
        answers = await self.call_service("me", "entitlements")
        if answers is None:
            return
        me, entitlements = answers
        app = self.extensionapp
        self.write_json(
            200,
            {
                "name": me.get("name"),
                "plan": entitlements.get("plan", me.get("plan")),
                "plan_display_name": entitlements.get("plan_display_name") or me.get("plan"),
                "plan_started_at": entitlements.get("plan_started_at"),
                "plan_ends_at": entitlements.get("plan_ends_at"),
                "plan_expired": bool(entitlements.get("plan_expired", False)),
                "profile": app.profile or None,
                "profiles": list(entitlements.get("profiles", me.get("profiles", []))),
                "subscriptions": list(entitlements.get("subscriptions", [])),
                "message": entitlements.get("message"),
            },
        )


_MAX_NOTEBOOK_BYTES = (
    10 * 1024 * 1024
)  # the service's limit (processors/registry.py); refused here before sending


class _ProcessorHandler(_BaseHandler):
    """Reads the notebook named in the body and forwards one allow-listed processors route to the service."""

    service_route = ""

    def _body(self) -> dict[str, Any] | None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("path"), str) or not body["path"]:
            self.write_json(400, {"message": 'send a JSON object with "path": the notebook\'s path'})
            return None
        if "definition" in body and not isinstance(body["definition"], dict):
            self.write_json(400, {"message": '"definition" must be a JSON object'})
            return None
        return body

    async def _notebook(self, path: str) -> bytes | None:
        if not path.endswith(".ipynb"):
            self.write_json(400, {"message": f"{path!r} is not a notebook (.ipynb)"})
            return None
        try:
            model = await ensure_async(
                self.contents_manager.get(path, content=True, type="file", format="base64")
            )
        except tornado.web.HTTPError as error:
            self.write_json(error.status_code, {"message": error.log_message or f"cannot read {path!r}"})
            return None
        content = base64.b64decode(model["content"])
        if len(content) > _MAX_NOTEBOOK_BYTES:
            self.write_json(
                413, {"message": f"{path!r} is over {_MAX_NOTEBOOK_BYTES} bytes; clear its outputs"}
            )
            return None
        return content

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        if self.refused_unconfigured():
            return
        app = self.extensionapp
        body = self._body()
        if body is None:
            return
        notebook = await self._notebook(body["path"])
        if notebook is None:
            return
        encoded = base64.b64encode(notebook).decode()
        if self.service_route == "processor_draft":
            request = {"notebook": encoded, "filename": body["path"].rsplit("/", 1)[-1]}
        else:
            request = {"definition": body.get("definition") or {}, "notebook": encoded}
        try:
            answer = await app.service_client().call(self.service_route, request)
        except ServiceError as e:
            self.log.info("Polar TEP extension: %s", e)
            # The service's own refusal (422 naming each field, 409 for a taken version) is the user's to fix.
            status = e.status if e.status is not None and 400 <= e.status < 500 else 502
            self.write_json(status, {"message": e.detail, "service_status": e.status})
            return
        self.write_json(201 if self.service_route == "processor_publish" else 200, answer)


class PublishProcessorHandler(_ProcessorHandler):
    service_route = "processor_publish"


class DraftProcessorHandler(_ProcessorHandler):
    service_route = "processor_draft"


class ValidateProcessorHandler(_ProcessorHandler):
    service_route = "processor_validate"


# What ``polartep/api/usage`` passes on from the service's usage answer (this month's numbers only).
USAGE_FIELDS = (
    "plan",
    "allowance",
    "used",
    "left",
    "renews_at",
    "plan_ends_at",
    "running_cores",
    "top_up",
    "top_ups",
    "cpu_hours_by_day",
    "notifications",
    "storage",
)


class UsageHandler(_BaseHandler):
    """This month's CPU-hours (used, left, per day), top-ups, notices and storage, for the usage meter and panel."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        if self.refused_unconfigured():
            return
        answers = await self.call_service("usage")
        if answers is None:
            return
        (usage,) = answers
        self.write_json(200, {key: usage.get(key) for key in USAGE_FIELDS})


class NotAllowedHandler(_BaseHandler):
    """Everything else under ``polartep/api/``: 404, so the extension is never a proxy."""

    def _refuse(self, path: str) -> None:
        self.write_json(
            404,
            {
                "message": f"polartep/api/{path} is not a route of the Polar TEP extension "
                f"(routes: {', '.join(ROUTE_NAMES)})"
            },
        )

    @tornado.web.authenticated
    @authorized
    def get(self, path: str) -> None:
        self._refuse(path)

    post = put = patch = delete = get


# (path under the server's base URL, handler); ExtensionApp prefixes the base URL.
_ROUTES: list[tuple[str, type[_BaseHandler]]] = [
    (rf"/{API_PREFIX}/me", MeHandler),
    (rf"/{API_PREFIX}/processors", PublishProcessorHandler),
    (rf"/{API_PREFIX}/processors/draft", DraftProcessorHandler),
    (rf"/{API_PREFIX}/processors/validate", ValidateProcessorHandler),
    (rf"/{API_PREFIX}/usage", UsageHandler),
]
# dashboards.py's routes (under dashboards) are mounted beside these by application.py.
ROUTE_NAMES = [path.split(f"/{API_PREFIX}/", 1)[1] for path, _ in _ROUTES] + ["dashboards"]


def handlers() -> list[tuple[str, type[_BaseHandler]]]:
    """The extension's handlers, the catch-all 404 last."""
    return [*_ROUTES, (rf"/{API_PREFIX}/(.*)", NotAllowedHandler)]
