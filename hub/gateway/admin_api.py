"""The platform's administrative routes on the Dask Gateway: list and stop every cluster of one user (for erasure).

Why: dask-gateway's own API lets a caller see and stop only clusters of its own name (``User.has_permissions``
compares names; a JupyterHub admin is no exception), yet erasing an account must stop all of that user's clusters
before their home goes: a running cluster keeps the home volume mounted (Docker mode), keeps the user's files open,
and, since the gateway authorises by name, would be handed to whoever signs up under the name next. So the gateway
gets two routes of its own on its API, next to dask-gateway's:

* ``GET /api/v1/platform/users/{username}/clusters``: ``{"clusters": [{"name", "status", "target"}]}`` for every
  cluster of the user that is not yet gone (dask-gateway ``status`` below STOPPED: its scheduler or a worker may still
  run, also while it is being stopped).
* ``DELETE /api/v1/platform/users/{username}/clusters``: asks the gateway to stop each of them (dask-gateway's own
  ``stop_cluster``, the same path as a user's ``cluster.shutdown()``); answers 202 with the same list. Idempotent.
  Stopped means gone: the backend removes the cluster's processes or containers before it records STOPPED, so a
  caller polls ``GET`` until the list is empty.
* ``POST /api/v1/platform/users/{username}/forget`` with ``{"pseudonym": "erased-..."}``: once none of the user's
  clusters is left running (409 otherwise), the records of their stopped clusters (kept for days for the meter)
  are moved to the pseudonym, in the database and in the gateway's memory. So the gateway forgets the name, and
  whoever signs up under it later sees none of the old clusters, not even stopped ones (dask-gateway shows a user
  every record of their name: options, start and stop times); the meter still finds every record by its key.

Rules this module guarantees:

* Only a JupyterHub token that holds the scope ``custom:polartep:gateway-admin`` may call these routes: the gateway
  asks the hub who owns the token (``GET /hub/api/user``) and checks the token's own scopes. The hub gives that scope
  to the platform service's role alone (``hub_config.py``); users' tokens (also admins') get 403, no token 401.
* The routes change nothing but the stop target of the named user's clusters; other users' clusters are untouched.

Rejected alternatives: the platform service decrypting each cluster's API token from the gateway's database (the
token dask-gateway accepts for ``DELETE /clusters/{name}``) would hand the service the database key and every
cluster's credential; writing ``target=STOPPED`` into the gateway's database from outside races the gateway, which
keeps its state in memory and would overwrite it; a JupyterHub admin token does not help (see above).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from aiohttp import web
from dask_gateway_server.backends.db_base import JobStatus

from polartep_hub.gateway.scopes import GATEWAY_ADMIN_SCOPE as ADMIN_SCOPE

ROUTE = "/api/v1/platform/users/{username}/clusters"
FORGET_ROUTE = "/api/v1/platform/users/{username}/forget"
PSEUDONYM_PREFIX = "erased-"  # personal_data.PSEUDONYM_PREFIX


def user_clusters_not_gone(db: Any, username: str) -> list[dict[str, str]]:
    """The user's cluster records (dask-gateway's in-memory ``db``) whose status is below STOPPED."""
    clusters = db.username_to_clusters.get(username, {})
    return [
        {"name": c.name, "status": JobStatus(c.status).name, "target": JobStatus(c.target).name}
        for c in sorted(clusters.values(), key=lambda c: c.name)
        if c.status < JobStatus.STOPPED
    ]


class PlatformAdminRoutesMixin:
    """Adds the platform's admin routes to the gateway's API; mix in before a ``DBBackendBase`` subclass."""

    _admin_http: httpx.AsyncClient | None = None

    async def setup(self, app) -> None:
        await super().setup(app)  # type: ignore[misc]
        # The aiohttp application is not frozen yet: the gateway starts serving it after the backend's setup.
        app.router.add_get(ROUTE, self._list_user_clusters)
        app.router.add_delete(ROUTE, self._stop_user_clusters)
        app.router.add_post(FORGET_ROUTE, self._forget_user)

    async def cleanup(self) -> None:
        if self._admin_http is not None:
            await self._admin_http.aclose()
        await super().cleanup()  # type: ignore[misc]

    def _hub_api_url(self) -> str:
        # The hub gives its managed services JUPYTERHUB_API_URL (dask-gateway's JupyterHubAuthenticator reads it too).
        return os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")

    async def _authorise(self, request: web.Request) -> None:
        kind, _, token = request.headers.get("Authorization", "").partition(" ")
        if kind.lower() != "token" or not token.strip():
            raise web.HTTPUnauthorized(
                reason="a JupyterHub token is required", headers={"WWW-Authenticate": "token"}
            )
        hub = self._hub_api_url()
        if not hub:
            raise web.HTTPServiceUnavailable(reason="this gateway runs without JupyterHub; no admin routes")
        if self._admin_http is None:
            self._admin_http = httpx.AsyncClient(timeout=10)
        try:
            r = await self._admin_http.get(f"{hub}/user", headers={"Authorization": f"token {token.strip()}"})
        except httpx.HTTPError:
            raise web.HTTPServiceUnavailable(reason="JupyterHub did not answer; try again") from None
        if r.status_code in (401, 403):
            raise web.HTTPUnauthorized(reason="JupyterHub does not know this token")
        if r.status_code != 200:
            raise web.HTTPServiceUnavailable(reason=f"JupyterHub answered {r.status_code}; try again")
        scopes = r.json().get("scopes") or []
        if ADMIN_SCOPE not in scopes:
            raise web.HTTPForbidden(reason=f"this token lacks the scope {ADMIN_SCOPE}")

    async def _list_user_clusters(self, request: web.Request) -> web.Response:
        await self._authorise(request)
        username = request.match_info["username"]
        return web.json_response({"clusters": user_clusters_not_gone(self.db, username)})  # type: ignore[attr-defined]

    async def _stop_user_clusters(self, request: web.Request) -> web.Response:
        await self._authorise(request)
        username = request.match_info["username"]
        listed = user_clusters_not_gone(self.db, username)  # type: ignore[attr-defined]
        for cluster in listed:
            await self.stop_cluster(cluster["name"])  # type: ignore[attr-defined]
        if listed:
            self.log.info(  # type: ignore[attr-defined]
                "Platform admin route: stopping %d cluster(s) of a user", len(listed)
            )
        return web.json_response(
            {"clusters": user_clusters_not_gone(self.db, username)},  # type: ignore[attr-defined]
            status=202,
        )

    async def _forget_user(self, request: web.Request) -> web.Response:
        await self._authorise(request)
        username = request.match_info["username"]
        try:
            pseudonym = str((await request.json()).get("pseudonym", ""))
        except ValueError:
            pseudonym = ""
        if not pseudonym.startswith(PSEUDONYM_PREFIX) or len(pseudonym) > 64 or pseudonym == PSEUDONYM_PREFIX:
            raise web.HTTPBadRequest(reason=f"pseudonym: give a name starting with {PSEUDONYM_PREFIX!r}")
        db = self.db  # type: ignore[attr-defined]
        if user_clusters_not_gone(db, username):
            raise web.HTTPConflict(reason="clusters of this user are still running; stop them first")
        records = db.username_to_clusters.pop(username, {})
        moved = db.username_to_clusters[pseudonym]
        for name, cluster in records.items():
            db.update_cluster(cluster, username=pseudonym)
            moved[name] = cluster
        return web.json_response({"forgotten": len(records)})
